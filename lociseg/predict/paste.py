"""Paste per-instance mask windows back into one instance label image."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from ..io.labels import label_dtype
from ..ops.labels import fill_label_holes, largest_piece
from ..ops.windows import clip_window
from ..structures import Instances

#: Rules for a pixel that several kept cells' masks claim (``paste_instances(overlaps=)``).
OVERLAP_RULES = ("score", "probability")


def paste_instances(
    instances: Instances,
    shape: tuple[int, int],
    *,
    threshold: float = 0.5,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
    overlaps: Literal["score", "probability"] = "score",
    fill_holes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste soft instance masks into a label image, one label per cell.

    First the instances are pasted greedily from the highest score down:
    each claims the pixels of its window where ``mask > threshold`` that no
    better instance has claimed, and of those keeps only the largest
    4-connected piece (a cell is one region). It is dropped when that piece
    is smaller than ``min_area`` or than ``min_fragment_fraction`` of its own
    thresholded mask (a mostly covered duplicate of a better detection); its
    pixels then stay free for lower-scoring instances. This pass decides
    which instances are cells. With ``overlaps="score"`` (default) it is
    also the result: where masks overlap, the higher score wins. With
    ``overlaps="probability"`` each pixel above ``threshold`` then goes to
    the kept cell whose mask is most confident there, so the border between
    two touching cells follows their masks rather than their detection
    scores; each cell again keeps its largest 4-connected piece and is
    dropped below ``min_area``. That helps irregular touching cells and
    hurts round nuclei (BENCHMARKS.md, "Overlaps by probability"). Last,
    with ``fill_holes``, background enclosed by one cell is given to it
    (:func:`fill_label_holes`).

    Parameters
    ----------
    instances : Instances
        Windows in image coordinates; parts outside the image are ignored.
    shape : (H, W)
        Shape of the output label image.
    threshold : float, optional
        Mask probability above which a pixel belongs to the instance.
    min_area : int, optional
        Smallest cell kept, in pixels.
    min_fragment_fraction : float, optional
        Smallest fraction of its thresholded mask a cell must keep after
        overlaps are resolved (0 disables the check).
    overlaps : {"score", "probability"}, optional
        Who gets a pixel that several kept cells' masks claim: the
        higher-scoring cell, or the most confident mask.
    fill_holes : bool, optional
        Fill each cell's holes (a cell is a region without holes; the
        thresholded masks of hollow-looking cells can leave some).

    Returns
    -------
    labels : (H, W) uint16 or uint32 ndarray
        0 = background, cells 1..N in descending score order.
    kept_index : (N,) int64 ndarray
        ``kept_index[k]`` is the index in ``instances`` of label ``k + 1``.
    """
    if overlaps not in OVERLAP_RULES:
        raise ValueError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
    h, w = int(shape[0]), int(shape[1])
    canvas = np.zeros((h, w), np.int32)
    kept: list[int] = []
    if len(instances) == 0:
        return canvas.astype(np.uint16), np.zeros(0, np.int64)
    # stable sort so equal scores keep their input order
    order = np.argsort(-np.asarray(instances.scores, np.float64), kind="stable")
    for i in order:
        clipped = _in_image(instances, int(i), (h, w))
        if clipped is None:
            continue
        box, probs = clipped
        mask = probs > threshold
        own = int(mask.sum())
        if own < max(min_area, 1):
            continue
        sub = canvas[box]
        free, area = largest_piece(mask & (sub == 0))
        if area == 0 or area < min_area or area < min_fragment_fraction * own:
            continue
        kept.append(int(i))
        sub[free] = len(kept)
    kept_index = np.asarray(kept, np.int64)
    if overlaps == "probability" and len(kept_index):
        canvas, kept_index = _by_probability(instances, kept_index, (h, w), threshold, min_area)
    if fill_holes:
        fill_label_holes(canvas)
    return canvas.astype(label_dtype(len(kept_index))), kept_index


def _in_image(instances: Instances, i: int, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Instance ``i``'s window clipped to the image: (image slices, mask probabilities there), or None."""
    clipped = clip_window(instances.origins[i], instances.masks.shape[1:], shape)
    if clipped is None:
        return None
    box, win = clipped
    return box, instances.masks[i][win]


def _by_probability(instances: Instances, kept: np.ndarray, shape: tuple[int, int], threshold: float,
                    min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the ``kept`` instances where each pixel goes to the most confident mask."""
    best = np.full(shape, threshold, np.float32)
    canvas = np.zeros(shape, np.int32)
    for k, i in enumerate(kept, start=1):
        clipped = _in_image(instances, int(i), shape)
        if clipped is None:
            continue
        box, probs = clipped
        sub_best = best[box]
        take = probs > sub_best  # strict: on a tie the higher score (earlier in kept) keeps the pixel
        sub_best[take] = probs[take]
        canvas[box][take] = k
    out = np.zeros_like(canvas)
    survivors: list[int] = []
    for k, box in enumerate(ndi.find_objects(canvas), start=1):
        if box is None:
            continue
        own, area = largest_piece(canvas[box] == k)
        if area < max(min_area, 1):
            continue
        survivors.append(int(kept[k - 1]))
        out[box][own] = len(survivors)
    return out, np.asarray(survivors, np.int64)

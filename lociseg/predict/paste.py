"""Paste per-instance mask windows back into one instance label image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..io.labels import label_dtype
from .instances import Instances


def paste_instances(
    instances: Instances,
    shape: tuple[int, int],
    *,
    threshold: float = 0.5,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste soft instance masks into a label image, one label per cell.

    Instances are pasted greedily from the highest score down, so where masks
    overlap the higher score wins. Each instance claims the pixels of its
    window where ``mask > threshold`` that no better instance has claimed;
    of those it keeps only the largest 4-connected piece (a cell is one
    region). It is dropped when that piece is smaller than ``min_area`` or
    than ``min_fragment_fraction`` of its own thresholded mask (a mostly
    covered duplicate of a better detection); its pixels then stay free for
    lower-scoring instances.

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

    Returns
    -------
    labels : (H, W) uint16 or uint32 ndarray
        0 = background, cells 1..N in descending score order.
    kept_index : (N,) int64 ndarray
        ``kept_index[k]`` is the index in ``instances`` of label ``k + 1``.
    """
    h, w = int(shape[0]), int(shape[1])
    n = len(instances)
    canvas = np.zeros((h, w), np.int32)
    kept: list[int] = []
    if n == 0:
        return canvas.astype(np.uint16), np.zeros(0, np.int64)
    wh, ww = instances.masks.shape[1:]
    # stable sort so equal scores keep their input order
    order = np.argsort(-np.asarray(instances.scores, np.float64), kind="stable")
    origins = np.asarray(instances.origins, np.int64)
    for i in order:
        oy, ox = origins[i]
        # window ∩ image, in image and in window coordinates
        y0, y1 = max(oy, 0), min(oy + wh, h)
        x0, x1 = max(ox, 0), min(ox + ww, w)
        if y0 >= y1 or x0 >= x1:
            continue
        mask = instances.masks[i, y0 - oy : y1 - oy, x0 - ox : x1 - ox] > threshold
        own = int(mask.sum())
        if own < max(min_area, 1):
            continue
        sub = canvas[y0:y1, x0:x1]
        free = mask & (sub == 0)
        comps, nc = ndi.label(free)
        if nc == 0:
            continue
        if nc > 1:
            sizes = np.bincount(comps.ravel())
            sizes[0] = 0
            best = int(sizes.argmax())
            free = comps == best
            area = int(sizes[best])
        else:
            area = int(free.sum())
        if area < min_area or area < min_fragment_fraction * own:
            continue
        kept.append(int(i))
        sub[free] = len(kept)
    return canvas.astype(label_dtype(len(kept))), np.asarray(kept, np.int64)

"""Paste per-instance mask windows back into one instance label image."""

from __future__ import annotations

from dataclasses import dataclass
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
    if len(instances) == 0:
        return np.zeros((h, w), np.uint16), np.zeros(0, np.int64)
    # the greedy score pass is the streaming step on an empty image: cells 1..N in descending score order
    res = paste_window(
        instances,
        np.zeros((h, w), np.int32),
        np.zeros(1, np.float32),
        np.zeros(1, np.int64),
        threshold=threshold,
        min_area=min_area,
        min_fragment_fraction=min_fragment_fraction,
    )
    canvas, kept_index = res.labels, res.index
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


def _by_probability(
    instances: Instances, kept: np.ndarray, shape: tuple[int, int], threshold: float, min_area: int
) -> tuple[np.ndarray, np.ndarray]:
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


# ------------------------------------------------------------------ streaming


@dataclass
class WindowPaste:
    """What :func:`paste_window` did to one window of the label image.

    Attributes
    ----------
    labels : (h, w) int32 ndarray
        The window after pasting (a new array).
    claims, best : (h, w) ndarrays or None
        With ``overlaps="probability"``: the updated score-rule labels
        (which decide the kept cells) and most-confident probabilities.
    ids, scores, own : (M,) ndarrays
        Label ids given to the new cells (in descending score order), their
        scores, and the pixel counts of their thresholded masks (the
        fragment rule's reference).
    index : (M,) int64 ndarray
        Index in the given instances of each new cell.
    boxes : (M, 4) int64 ndarray
        ``(y0, y1, x0, x1)`` of each new cell in window coordinates (in
        ``labels`` and, with the probability rule, ``claims``).
    dropped : (K,) int64 ndarray
        Already pasted cells that lost so many pixels to better new cells
        that they no longer pass the area or fragment rule (now removed).
    next_id : int
        The next free label id.
    """

    labels: np.ndarray
    claims: np.ndarray | None
    best: np.ndarray | None
    ids: np.ndarray
    scores: np.ndarray
    own: np.ndarray
    index: np.ndarray
    boxes: np.ndarray
    dropped: np.ndarray
    next_id: int


def paste_window(
    instances: Instances,
    labels: np.ndarray,
    cell_scores: np.ndarray,
    cell_own: np.ndarray,
    *,
    claims: np.ndarray | None = None,
    best: np.ndarray | None = None,
    threshold: float = 0.5,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
    overlaps: Literal["score", "probability"] = "score",
) -> WindowPaste:
    """Paste one tile's instances into a window of a label image that may already hold cells.

    The per-tile step of :class:`StreamingPaste`, free of state so that a
    block worker can run it: the result depends only on the arguments
    (which are not modified). The rules are those of
    :func:`paste_instances`, applied against the cells already in the
    window: a new instance claims the pixels of its thresholded mask that
    are free or held by a *lower*-scoring cell (ties go to the cell pasted
    first, as :func:`paste_instances`' stable score order gives them to the
    earlier input), keeps its largest 4-connected piece, and is dropped by
    the ``min_area`` and ``min_fragment_fraction`` rules. A cell that loses
    pixels keeps its largest remaining piece and is removed when that fails
    the same rules. With ``overlaps="probability"`` that score pass runs on
    ``claims`` and only decides which cells are kept; the kept new cells
    then take every pixel of ``labels`` where their mask is more confident
    than ``best``, and a cell left with less than ``min_area`` is removed.

    Parameters
    ----------
    instances : Instances
        In window coordinates; window parts outside ``labels`` are ignored.
    labels : (h, w) int ndarray
        Current labels of the window. It must hold every pixel of each
        already pasted cell that the new windows touch, so that a cell
        losing pixels is judged whole.
    cell_scores, cell_own : (next_id,) ndarrays
        Score and thresholded-mask area of every label id pasted so far
        (index 0 unused); ``len(cell_scores)`` is the first new id.
    claims, best : (h, w) ndarrays, optional
        Required with ``overlaps="probability"``: the score-rule labels and
        the highest mask probability pasted so far per pixel (``threshold``
        where none).
    threshold, min_area, min_fragment_fraction, overlaps
        As in :func:`paste_instances`.

    Returns
    -------
    WindowPaste
    """
    if overlaps not in OVERLAP_RULES:
        raise ValueError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
    prob = overlaps == "probability"
    if prob and (claims is None or best is None):
        raise ValueError("overlaps='probability' needs the claims and best-probability windows")
    labels = np.array(labels, np.int32)
    canvas = np.array(claims, np.int32) if prob else labels
    first = len(cell_scores)
    n = len(instances)
    score = np.concatenate([np.asarray(cell_scores, np.float64), np.empty(n)])
    score[0] = -np.inf  # background yields to everything
    own_all = np.concatenate([np.asarray(cell_own, np.int64), np.zeros(n, np.int64)])
    new, victims = _claim(instances, canvas, score, own_all, first, threshold, min_area, min_fragment_fraction)
    next_id = first + len(new)
    # earlier cells that lost pixels: largest piece, or gone (same-tile cells never lose: they came in score order)
    dropped = [v for v in sorted(victims) if not trim_cell(canvas, v, min_area, min_fragment_fraction * own_all[v])]
    if prob:
        best = np.array(best, np.float32)
        dropped += _take_confident(labels, best, new, dropped, first, threshold, min_area)
    kept, index, boxes = [], [], []
    for k, box, _, i in new:
        if prob and not trim_cell(labels, k, min_area, 0.0, box):
            continue
        kept.append(k)
        index.append(i)
        ys, xs = np.nonzero(canvas[box] == k)
        if prob:  # the box must cover the cell in both images
            ys2, xs2 = np.nonzero(labels[box] == k)
            ys, xs = np.concatenate([ys, ys2]), np.concatenate([xs, xs2])
        boxes.append(
            (box[0].start + ys.min(), box[0].start + ys.max() + 1, box[1].start + xs.min(), box[1].start + xs.max() + 1)
        )
    kept_ids = np.asarray(kept, np.int64)
    return WindowPaste(
        labels,
        canvas if prob else None,
        best if prob else None,
        kept_ids,
        score[kept_ids].astype(np.float32),
        own_all[kept_ids],
        np.asarray(index, np.int64),
        np.asarray(boxes, np.int64).reshape(-1, 4),
        np.unique(np.asarray(dropped, np.int64)),
        next_id,
    )


#: A new cell of :func:`paste_window`: its id, its window box, its mask probabilities there and its instance index.
_NewCell = tuple[int, tuple[slice, slice], np.ndarray, int]


def _claim(
    instances: Instances,
    canvas: np.ndarray,
    score: np.ndarray,
    own_all: np.ndarray,
    first: int,
    threshold: float,
    min_area: int,
    min_fragment_fraction: float,
) -> tuple[list[_NewCell], set[int]]:
    """The score pass of :func:`paste_window`, best instance first: the new cells (ids from ``first``,
    written into ``canvas``, ``score`` and ``own_all``) and the earlier cells that lost pixels to them.
    """
    new: list[_NewCell] = []
    victims: set[int] = set()
    next_id = first
    for i in np.argsort(-np.asarray(instances.scores, np.float64), kind="stable"):
        clipped = _in_image(instances, int(i), canvas.shape)
        if clipped is None:
            continue
        box, probs = clipped
        mask = probs > threshold
        own = int(mask.sum())
        if own < max(min_area, 1):
            continue
        sub = canvas[box]
        s = float(instances.scores[i])
        piece, area = largest_piece(mask & (score[sub] < s))
        if area == 0 or area < min_area or area < min_fragment_fraction * own:
            continue
        victims.update(int(v) for v in np.unique(sub[piece]) if v)
        sub[piece] = next_id
        score[next_id], own_all[next_id] = s, own
        new.append((next_id, box, probs, int(i)))
        next_id += 1
    return new, victims


def _take_confident(
    labels: np.ndarray,
    best: np.ndarray,
    new: list[_NewCell],
    dropped: list[int],
    first: int,
    threshold: float,
    min_area: int,
) -> list[int]:
    """The probability pass of :func:`paste_window` (``labels`` and ``best`` in place): the ``dropped``
    cells leave, each kept new cell takes the pixels where its mask is more confident than ``best``;
    returns the earlier cells that this left under ``min_area`` (removed).
    """
    gone = np.isin(labels, dropped)
    labels[gone] = 0
    best[gone] = threshold
    losers: set[int] = set()
    for k, box, probs, _ in new:
        sub_best = best[box]
        take = probs > sub_best  # strict: the earlier (higher-scoring) cell keeps a tie
        losers.update(int(v) for v in np.unique(labels[box][take]) if 0 < v < first)
        sub_best[take] = probs[take]
        labels[box][take] = k
    return [v for v in sorted(losers) if not trim_cell(labels, v, min_area, 0.0)]


def trim_cell(
    labels: np.ndarray, k: int, min_area: int, min_keep: float, box: tuple[slice, slice] | None = None
) -> bool:
    """Cut label ``k`` (within ``box``) to its largest piece, or remove it when that is too small; True when kept.

    "Too small": fewer than ``max(min_area, 1)`` pixels, or fewer than
    ``min_keep``. ``labels`` is changed in place. The rule every paster
    applies to a cell that lost pixels to better ones.
    """
    sub = labels if box is None else labels[box]
    pix = sub == k
    piece, area = largest_piece(pix)
    if area == 0 or area < max(min_area, 1) or area < min_keep:
        sub[pix] = 0
        return False
    sub[pix & ~piece] = 0
    return True


class StreamingPaste:
    """A label image that tiles' instances are pasted into as they come.

    Memory is the label image (uint16 while the live cells fit, else
    uint32), the per-cell score / area / box arrays and one tile's
    instances (with ``overlaps="probability"`` also a score-rule image of
    the same dtype and a float32 probability image); instances are not
    kept. When the ids run out, the live cells are renumbered in paste
    order (which keeps every rule's outcome); only when they still do not
    leave room is the image widened to uint32. Each :meth:`add` runs :func:`paste_window` on the window
    that the new instances and the cells they touch cover, so cells
    crossing tile borders are resolved with the overlap by the rules of
    :func:`paste_instances`. Only conflicts between cells of different
    tiles are decided as they come, where one global score order could
    differ in rare chains (a cell removed after its pixels were refused to
    others); see BENCHMARKS.md for the agreement on real fields.

    Parameters
    ----------
    shape : (H, W)
    threshold, min_area, min_fragment_fraction, overlaps
        As in :func:`paste_instances`.
    dtype : unsigned integer dtype
        Of the label image to start with (a narrower one only to test the
        renumbering).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        threshold: float = 0.5,
        min_area: int = 8,
        min_fragment_fraction: float = 0.25,
        overlaps: Literal["score", "probability"] = "score",
        dtype: np.dtype | type = np.uint16,
    ):
        if overlaps not in OVERLAP_RULES:
            raise ValueError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.rules = dict(
            threshold=threshold, min_area=min_area, min_fragment_fraction=min_fragment_fraction, overlaps=overlaps
        )
        self.labels = np.zeros(self.shape, dtype)
        prob = overlaps == "probability"
        self.claims = np.zeros(self.shape, dtype) if prob else None
        self.best = np.full(self.shape, threshold, np.float32) if prob else None
        self._score = np.zeros(1024, np.float32)
        self._own = np.zeros(1024, np.int64)
        self._box = np.zeros((1024, 4), np.int64)
        self._alive = np.zeros(1024, bool)
        self.next_id = 1

    def add(self, instances: Instances) -> None:
        """Paste instances given in image coordinates (typically one tile's)."""
        if not len(instances):
            return
        wh, ww = instances.masks.shape[1:]
        o = np.asarray(instances.origins, np.int64)
        y0, x0 = max(int(o[:, 0].min()), 0), max(int(o[:, 1].min()), 0)
        y1, x1 = min(int(o[:, 0].max()) + wh, self.shape[0]), min(int(o[:, 1].max()) + ww, self.shape[1])
        if y0 >= y1 or x0 >= x1:
            return
        # grow the window over every pasted cell it touches, so a cell losing pixels is seen whole
        b = self._box[: self.next_id]
        touch = self._alive[: self.next_id] & (b[:, 0] < y1) & (b[:, 1] > y0) & (b[:, 2] < x1) & (b[:, 3] > x0)
        if touch.any():
            y0, y1 = min(y0, int(b[touch, 0].min())), max(y1, int(b[touch, 1].max()))
            x0, x1 = min(x0, int(b[touch, 2].min())), max(x1, int(b[touch, 3].max()))
        win = (slice(y0, y1), slice(x0, x1))
        prob = self.claims is not None
        self._make_room(len(instances))
        res = paste_window(
            instances.shift(-y0, -x0),
            self.labels[win],
            self._score[: self.next_id],
            self._own[: self.next_id],
            claims=self.claims[win] if prob else None,
            best=self.best[win] if prob else None,
            **self.rules,
        )
        self.labels[win] = res.labels
        if prob:
            self.claims[win] = res.claims
            self.best[win] = res.best
        self._grow(res.next_id)
        self._score[res.ids], self._own[res.ids], self._alive[res.ids] = res.scores, res.own, True
        self._box[res.ids] = res.boxes + np.array([y0, y0, x0, x0])
        self._alive[res.dropped] = False
        self.next_id = res.next_id

    def _make_room(self, n: int, rows: int = 1024) -> None:
        """Make sure ids up to ``next_id + n - 1`` fit the label image's dtype.

        First renumbers the live cells 1..m in id order (the paste order, so
        ties are still decided as before); widens the image(s) to uint32 when
        that frees less than a quarter of the id range, so renumbering stays rare.
        """
        top = int(np.iinfo(self.labels.dtype).max)
        if self.next_id + n - 1 <= top:
            return
        ids = np.flatnonzero(self._alive[: self.next_id])
        lut = np.zeros(self.next_id, self.labels.dtype)
        lut[ids] = np.arange(1, len(ids) + 1)
        images = [a for a in (self.labels, self.claims) if a is not None]
        for img in images:
            for a in range(0, img.shape[0], rows):
                img[a : a + rows] = lut[img[a : a + rows]]
        m = len(ids) + 1
        for name in ("_score", "_own", "_box", "_alive"):
            arr = getattr(self, name)
            arr[1:m] = arr[ids]
            arr[m : self.next_id] = 0
        self.next_id = m
        if m + n - 1 > top - (top + 1) // 4:
            self.labels = self.labels.astype(np.uint32)
            if self.claims is not None:
                self.claims = self.claims.astype(np.uint32)

    def _grow(self, n: int) -> None:
        if n <= len(self._score):
            return
        size = max(n, 2 * len(self._score))
        for name in ("_score", "_own", "_box", "_alive"):
            old = getattr(self, name)
            arr = np.zeros((size, *old.shape[1:]), old.dtype)
            arr[: len(old)] = old
            setattr(self, name, arr)

    def finish(self, *, fill_holes: bool = True, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The label image with cells 1..N by descending score, and their scores.

        Like :func:`paste_instances`, equal scores keep paste order. The
        label image is renumbered in place by blocks of ``rows`` rows and
        returned as is when its dtype is already the smallest that holds
        the cells (no copy of the image; otherwise converted); the paster is
        spent.
        """
        ids = np.flatnonzero(self._alive[: self.next_id])
        ids = ids[np.argsort(-self._score[ids].astype(np.float64), kind="stable")]
        labels = self.labels
        lut = np.zeros(self.next_id, labels.dtype)
        lut[ids] = np.arange(1, len(ids) + 1)
        for a in range(0, labels.shape[0], rows):
            labels[a : a + rows] = lut[labels[a : a + rows]]
        if fill_holes:
            fill_label_holes(labels)
        self.labels = self.claims = self.best = None
        out = label_dtype(len(ids))
        return (labels if labels.dtype == out else labels.astype(out)), self._score[ids]

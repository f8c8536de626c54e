"""Object overlaps and one-to-one matching of instance label images.

All pairwise intersections come from one joint histogram of the two label
images, computed in a single vectorised pass, so the cost grows with the
number of pixels (plus a sort of the few distinct overlapping pairs) and not
with the square of the number of objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MatchResult",
    "Overlaps",
    "compute_overlaps",
    "drop_unlabelled",
    "foreground_iou",
    "match_instances",
    "overlap_pairs",
]

#: IoU thresholds 0.50, 0.55, ..., 0.95 (COCO, DSB 2018, LACSS).
DEFAULT_THRESHOLDS: np.ndarray = np.round(np.arange(0.5, 0.96, 0.05), 2)


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}")
    out = []
    for name, arr in (("gt", gt), ("pred", pred)):
        if arr.dtype == bool:
            arr = arr.view(np.uint8)
        elif not np.issubdtype(arr.dtype, np.integer):
            # float label images (e.g. from some TIFF writers) are fine when integral
            if not np.issubdtype(arr.dtype, np.floating) or not np.array_equal(arr, np.round(arr)):
                raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
            arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name} has negative labels")
        out.append(arr)
    return out[0], out[1]


def _sequential(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels renumbered 1..n (flat int64), the original ids and the object areas.

    A lookup table indexed by label keeps this O(pixels); label values far
    larger than the image fall back to ``np.unique``.
    """
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 1024:
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, np.int64)
        lut[ids] = np.arange(1, len(ids) + 1)
        return lut[flat], ids, counts[ids]
    ids, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    seq = inverse.astype(np.int64).ravel()
    if ids[0] == 0:
        return seq, ids[1:], counts[1:]
    return seq + 1, ids, counts


class Overlaps(NamedTuple):
    """Every object of two label images and all their overlapping pairs.

    Attributes
    ----------
    gt_labels, pred_labels : (G,), (P,) int64 ndarray
        Label ids present in each image, ascending.
    gt_sizes, pred_sizes : (G,), (P,) int64 ndarray
        Their areas in pixels.
    gt_index, pred_index : (K,) int64 ndarray
        For each overlapping pair, the position of its objects in
        ``gt_labels`` / ``pred_labels``.
    intersection : (K,) int64 ndarray
        Pixels shared by each pair.
    iou : (K,) float64 ndarray
        Intersection over union of each pair.
    """

    gt_labels: np.ndarray
    gt_sizes: np.ndarray
    pred_labels: np.ndarray
    pred_sizes: np.ndarray
    gt_index: np.ndarray
    pred_index: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray


def compute_overlaps(gt: np.ndarray, pred: np.ndarray) -> Overlaps:
    """All objects and overlapping (gt, pred) pairs of two label images.

    Parameters
    ----------
    gt, pred : (H, W) or (Z, H, W) int ndarray
        Instance label images of one shape, 0 = background; ids need not be
        consecutive.

    Returns
    -------
    Overlaps
    """
    gt, pred = _check_pair(gt, pred)
    g, gt_labels, gt_sizes = _sequential(gt)
    p, pred_labels, pred_sizes = _sequential(pred)
    n_pred = len(pred_labels)
    code = g * (n_pred + 1) + p
    # Neighbouring pixels usually share their (gt, pred) pair: collapsing runs
    # first leaves only a few distinct codes per row to sort.
    if code.size:
        starts = np.flatnonzero(np.concatenate(([True], code[1:] != code[:-1])))
        lengths = np.diff(np.append(starts, code.size))
        run_code = code[starts]
        keep = (run_code // (n_pred + 1) > 0) & (run_code % (n_pred + 1) > 0)
        run_code, lengths = run_code[keep], lengths[keep]
        pairs, inverse = np.unique(run_code, return_inverse=True)
        inter = np.bincount(inverse.ravel(), weights=lengths, minlength=len(pairs)).astype(np.int64)
    else:
        pairs = np.zeros(0, np.int64)
        inter = np.zeros(0, np.int64)
    gi = pairs // (n_pred + 1) - 1
    pi = pairs % (n_pred + 1) - 1
    union = gt_sizes[gi] + pred_sizes[pi] - inter
    iou = inter / np.maximum(union, 1)
    return Overlaps(
        gt_labels.astype(np.int64),
        gt_sizes.astype(np.int64),
        pred_labels.astype(np.int64),
        pred_sizes.astype(np.int64),
        gi.astype(np.int64),
        pi.astype(np.int64),
        inter,
        iou,
    )


def overlap_pairs(
    gt: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every overlapping (gt, pred) object pair, as sparse arrays.

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.

    Returns
    -------
    gt_ids, pred_ids : (K,) int64 ndarray
        Label ids of each overlapping pair (pairs that share no pixel are
        left out).
    iou : (K,) float64 ndarray
        Their intersection over union.
    gt_areas, pred_areas : (K,) int64 ndarray
        Areas of the pair's gt and pred objects (aligned with ``gt_ids``).
        Use :func:`compute_overlaps` for the areas of all objects.

    Examples
    --------
    >>> gt = np.zeros((4, 4), int); gt[:2, :2] = 1
    >>> pred = np.zeros((4, 4), int); pred[:2, :1] = 7
    >>> overlap_pairs(gt, pred)[2]
    array([0.5])
    """
    ov = compute_overlaps(gt, pred)
    return (
        ov.gt_labels[ov.gt_index],
        ov.pred_labels[ov.pred_index],
        ov.iou,
        ov.gt_sizes[ov.gt_index],
        ov.pred_sizes[ov.pred_index],
    )


def drop_unlabelled(gt: np.ndarray, pred: np.ndarray, *, min_labelled: float = 0.5) -> np.ndarray:
    """Predictions with the objects that lie mostly on unlabelled pixels removed (partial labels).

    For sets where only some objects are labelled (e.g. marker-positive cells
    among many others), a prediction on an unlabelled object is neither right
    nor wrong. A predicted object is set to background when less than
    ``min_labelled`` of its pixels lie on labelled objects (``gt > 0``); the
    others are scored as usual, so a prediction that merges a labelled cell
    with its unlabelled neighbour still fails to match. Ids are kept (score
    arrays indexed by id stay valid).

    Examples
    --------
    >>> gt = np.zeros((4, 4), int); gt[:2, :2] = 1
    >>> pred = np.zeros((4, 4), int); pred[:2, :2] = 3; pred[3, 3] = 4
    >>> np.unique(drop_unlabelled(gt, pred))
    array([0, 3])
    """
    gt, pred = _check_pair(gt, pred)
    if not 0 < min_labelled <= 1:
        raise ValueError(f"min_labelled must be in (0, 1], got {min_labelled}")
    top = int(pred.max()) if pred.size else 0
    area = np.bincount(pred.ravel(), minlength=top + 1)
    on_gt = np.bincount(pred.ravel(), weights=(gt.ravel() > 0), minlength=top + 1)
    drop = on_gt < min_labelled * area
    drop[0] = True
    return np.where(drop[pred], 0, pred)


def _assign(gi: np.ndarray, pi: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices into the candidate pairs that form the best one-to-one matching.

    Pairs whose gt and pred have no other candidate are matched directly;
    only the conflicting remainder goes to ``linear_sum_assignment``, which
    maximises the number of matches first and the summed IoU second.
    """
    if len(gi) == 0:
        return np.zeros(0, np.intp)
    g_deg = np.bincount(gi)[gi]
    p_deg = np.bincount(pi)[pi]
    simple = (g_deg == 1) & (p_deg == 1)
    chosen = [np.flatnonzero(simple)]
    rest = np.flatnonzero(~simple)
    if len(rest):
        rows, r_inv = np.unique(gi[rest], return_inverse=True)
        cols, c_inv = np.unique(pi[rest], return_inverse=True)
        # A bonus larger than any possible IoU total makes cardinality win.
        bonus = min(len(rows), len(cols)) + 1.0
        weight = np.zeros((len(rows), len(cols)))
        weight[r_inv, c_inv] = bonus + iou[rest]
        slot = np.full((len(rows), len(cols)), -1, np.intp)
        slot[r_inv, c_inv] = rest
        r, c = linear_sum_assignment(weight, maximize=True)
        picked = slot[r, c]
        chosen.append(picked[picked >= 0])
    return np.sort(np.concatenate(chosen))


@dataclass
class MatchResult:
    """Counts and scores of a one-to-one matching at several IoU thresholds.

    Per-threshold arrays have one entry per value of ``thresholds``. Ratios
    with a zero denominator (no objects on a side) are 1 when both images are
    empty and 0 otherwise; ``fnr`` is 0 when there is no ground truth.

    Attributes
    ----------
    thresholds : (T,) float ndarray
    tp, fp, fn : (T,) int ndarray
        Matched pairs, unmatched predictions, unmatched ground-truth objects.
    precision, recall, f1 : (T,) float ndarray
        ``TP/(TP+FP)``, ``TP/(TP+FN)``, ``2TP/(2TP+FP+FN)``.
    dsb_ap : (T,) float ndarray
        Data Science Bowl 2018 "average precision" ``TP/(TP+FP+FN)``.
    pq : (T,) float ndarray
        Panoptic quality ``sum(matched IoU) / (TP + FP/2 + FN/2)``.
    fnr : (T,) float ndarray
        False-negative rate ``FN / n_gt``.
    sum_iou : (T,) float ndarray
        Summed IoU of the matched pairs (to pool PQ over images).
    n_gt, n_pred : int
        Objects in each image.
    matched_gt, matched_pred : (M,) int64 ndarray
        Label ids of the pairs matched at IoU 0.5.
    matched_iou : (M,) float ndarray
        Their IoU.
    mean_matched_iou : float
        Mean of ``matched_iou`` (0 when nothing matched, 1 when both empty).
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    dsb_ap: np.ndarray
    pq: np.ndarray
    fnr: np.ndarray
    sum_iou: np.ndarray
    n_gt: int
    n_pred: int
    matched_gt: np.ndarray = field(repr=False)
    matched_pred: np.ndarray = field(repr=False)
    matched_iou: np.ndarray = field(repr=False)
    mean_matched_iou: float = 0.0

    @classmethod
    def from_counts(
        cls, thresholds: np.ndarray, tp: np.ndarray, n_gt: int, n_pred: int, sum_iou: np.ndarray, **matched
    ) -> MatchResult:
        """Derive every score from TP per threshold and the object counts."""
        tp = np.asarray(tp, np.int64)
        fp, fn = n_pred - tp, n_gt - tp
        both_empty = n_gt == 0 and n_pred == 0
        empty = 1.0 if both_empty else 0.0

        def ratio(num, den):
            num = np.asarray(num, float)
            den = np.asarray(den, float) * np.ones_like(num)
            out = np.full_like(num, empty)
            np.divide(num, den, out=out, where=den > 0)
            return out

        matched_iou = matched.get("matched_iou", np.zeros(0))
        tp50 = matched.get("tp50", len(matched_iou))
        mean_iou = (matched.get("sum_iou50", float(np.sum(matched_iou))) / tp50) if tp50 else empty
        return cls(
            thresholds=np.asarray(thresholds, float),
            tp=tp,
            fp=fp,
            fn=fn,
            precision=ratio(tp, n_pred),
            recall=ratio(tp, n_gt),
            f1=ratio(2 * tp, 2 * tp + fp + fn),
            dsb_ap=ratio(tp, tp + fp + fn),
            pq=ratio(sum_iou, tp + 0.5 * fp + 0.5 * fn),
            fnr=ratio(fn, n_gt) if n_gt else np.zeros(len(tp)),
            sum_iou=np.asarray(sum_iou, float),
            n_gt=int(n_gt),
            n_pred=int(n_pred),
            matched_gt=np.asarray(matched.get("matched_gt", np.zeros(0, np.int64))),
            matched_pred=np.asarray(matched.get("matched_pred", np.zeros(0, np.int64))),
            matched_iou=np.asarray(matched_iou, float),
            mean_matched_iou=float(mean_iou),
        )

    def at(self, threshold: float) -> dict[str, float]:
        """Scalar scores at one of the thresholds."""
        hit = np.flatnonzero(np.isclose(self.thresholds, threshold))
        if not len(hit):
            raise KeyError(f"threshold {threshold} not among {self.thresholds.tolist()}")
        k = hit[0]
        return {
            name: getattr(self, name)[k].item()
            for name in ("tp", "fp", "fn", "precision", "recall", "f1", "dsb_ap", "pq", "fnr")
        }


def _match_overlaps(ov: Overlaps, thresholds: np.ndarray) -> MatchResult:
    n_gt, n_pred = len(ov.gt_labels), len(ov.pred_labels)
    thresholds = np.asarray(thresholds, float).ravel()
    tp = np.zeros(len(thresholds), np.int64)
    sum_iou = np.zeros(len(thresholds))
    matched_at = {}
    for t in sorted(set(thresholds.tolist()) | {0.5}):
        cand = np.flatnonzero(ov.iou >= t)
        pick = cand[_assign(ov.gt_index[cand], ov.pred_index[cand], ov.iou[cand])]
        matched_at[t] = pick
        sel = np.isclose(thresholds, t)
        tp[sel], sum_iou[sel] = len(pick), ov.iou[pick].sum()
    pick = matched_at[0.5]
    return MatchResult.from_counts(
        thresholds,
        tp,
        n_gt,
        n_pred,
        sum_iou,
        matched_gt=ov.gt_labels[ov.gt_index[pick]],
        matched_pred=ov.pred_labels[ov.pred_index[pick]],
        matched_iou=ov.iou[pick],
    )


def match_instances(
    gt: np.ndarray, pred: np.ndarray, thresholds: np.ndarray | list[float] = DEFAULT_THRESHOLDS
) -> MatchResult:
    """Match predicted to ground-truth objects one-to-one at each IoU threshold.

    A pair is a candidate when its IoU is at least the threshold. Above an
    IoU of 0.5 an object can overlap at most one other that much, so the
    candidates are already a matching. At or below 0.5 (and for exact ties
    at 0.5) conflicting candidates are resolved by optimal assignment
    (:func:`scipy.optimize.linear_sum_assignment` on the conflicting
    candidates only): the most matches, then the largest summed IoU, as in
    StarDist's ``matching``.

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.
    thresholds : sequence of float, optional
        IoU thresholds, default 0.50:0.05:0.95.

    Returns
    -------
    MatchResult
    """
    return _match_overlaps(compute_overlaps(gt, pred), thresholds)


def foreground_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU of the foreground (label > 0) of two label or binary images.

    Returns 1.0 when both are empty.
    """
    gt, pred = _check_pair(gt, pred)
    a, b = gt > 0, pred > 0
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union

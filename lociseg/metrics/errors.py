"""Where matched masks go wrong: at borders between cells or at the edge of the foreground.

A diagnostic beside the scores: two models can reach the same F1@0.5 with
very different outline errors, and weak supervision (which never sees a
border between two touching cells) errs in a different place from full
supervision.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .matching import _check_pair, compute_overlaps

__all__ = ["ERROR_KINDS", "error_kinds", "mask_errors"]


def _touching_ids(gt: np.ndarray, distance: int) -> np.ndarray:
    """Ids of GT objects that lie within ``distance`` px of another object."""
    size = 2 * distance + 1
    top = int(gt.max()) + 1  # (not the dtype's max: scipy's erosion overflows on it)
    hi = ndi.grey_dilation(gt, size=size)  # background (0) never wins the max
    lo = ndi.grey_erosion(np.where(gt > 0, gt, top), size=size)  # nor the min, set to top
    near_other = (gt > 0) & ((hi != gt) | (lo != gt))
    return np.unique(gt[near_other])


def mask_errors(
    gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = 0.5, touch_distance: int = 2
) -> dict[str, np.ndarray | int]:
    """Split the pixel errors of matched objects by where they fall.

    Objects are matched one to one at IoU > ``iou_threshold`` (>= 0.5, so a
    match is unique). For every matched pair (g, p):

    * ``extra_cell``: pixels of p in *another* GT object (a border between
      touching cells placed into the neighbour);
    * ``extra_bg``: pixels of p on GT background (the outline spills out);
    * ``miss_cell``: pixels of g held by *another* predicted object;
    * ``miss_bg``: pixels of g that no predicted object holds.

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.
    iou_threshold : float
        Matching threshold, at least 0.5.
    touch_distance : int
        A GT object "touches" another when they come within this many pixels.

    Returns
    -------
    dict
        ``n_gt``, ``n_pred``, ``n_matched`` (int); ``iou`` and ``touching``
        ((M,) arrays over matched pairs, in GT label order); ``matched_area``
        (pixels of the matched GT objects) and the four error counts (int),
        which divided by ``matched_area`` give comparable fractions.

    Examples
    --------
    >>> gt = np.zeros((4, 8), int); gt[:, :4] = 1; gt[:, 4:] = 2
    >>> pred = np.zeros((4, 8), int); pred[:, :5] = 1; pred[:, 5:] = 2
    >>> e = mask_errors(gt, pred); e["extra_cell"], e["miss_cell"]
    (4, 4)
    """
    if iou_threshold < 0.5:
        raise ValueError(f"iou_threshold must be >= 0.5 for unique matches, got {iou_threshold}")
    gt, pred = _check_pair(gt, pred)
    gt = gt.astype(np.int64, copy=False)
    pred = pred.astype(np.int64, copy=False)
    ov = compute_overlaps(gt, pred)
    hit = ov.iou > iou_threshold
    g_ids = ov.gt_labels[ov.gt_index[hit]]
    p_ids = ov.pred_labels[ov.pred_index[hit]]
    order = np.argsort(g_ids)
    g_ids, p_ids, iou = g_ids[order], p_ids[order], ov.iou[hit][order]
    partner_of_gt = np.zeros(int(gt.max()) + 1, np.int64)
    partner_of_gt[g_ids] = p_ids
    partner_of_pred = np.zeros(int(pred.max()) + 1, np.int64)
    partner_of_pred[p_ids] = g_ids
    in_matched_gt = partner_of_gt[gt] > 0
    in_matched_pred = partner_of_pred[pred] > 0
    miss = in_matched_gt & (pred != partner_of_gt[gt])
    extra = in_matched_pred & (gt != partner_of_pred[pred])
    touching = np.isin(g_ids, _touching_ids(gt, touch_distance))
    return {
        "n_gt": len(ov.gt_labels),
        "n_pred": len(ov.pred_labels),
        "n_matched": len(g_ids),
        "iou": iou,
        "touching": touching,
        "matched_area": int(np.count_nonzero(in_matched_gt)),
        "extra_cell": int(np.count_nonzero(extra & (gt > 0))),
        "extra_bg": int(np.count_nonzero(extra & (gt == 0))),
        "miss_cell": int(np.count_nonzero(miss & (pred > 0))),
        "miss_bg": int(np.count_nonzero(miss & (pred == 0))),
    }


ERROR_KINDS = ("matched", "poor", "missed", "fp_background", "fp_fragment", "fp_merge", "fp_other")


def error_kinds(gt: np.ndarray, pred: np.ndarray, *, share: float = 0.2) -> dict[str, np.ndarray | int]:
    """Count what each unmatched object is: a poorly outlined or missed cell, a fragment, a merge.

    Every GT object is classed by its best IoU with any predicted one:
    ``matched`` (>= 0.5, as :func:`match_instances` counts a match), ``poor``
    (found but outlined too badly to count: 0.1 < IoU < 0.5) or ``missed``
    (<= 0.1). ``matched`` can exceed the one-to-one matches only where one
    prediction has IoU exactly 0.5 with two cells. Every predicted object
    without a partner at IoU >= 0.5 is ``fp_background`` when most of it
    lies on GT background, else ``fp_merge`` when two or more GT objects
    each hold more than ``share`` of it, ``fp_fragment`` when one does (a
    piece of one cell: a split), ``fp_other`` when none does (spread thinly
    over many).

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.
    share : float
        Fraction of a predicted object that a GT object must hold to count
        as one of the cells it covers.

    Returns
    -------
    dict
        One int per name of :data:`ERROR_KINDS`, and ``gt_kind`` ((G,) str
        array over the GT labels in ascending order: its class) so callers
        can break a class down further (by nuclei per cell, say), and
        ``fp_labels`` (the ids of the predicted objects counted as false
        positives, ascending) to look at those.

    Examples
    --------
    >>> gt = np.zeros((8, 12), int); gt[:, :6] = 1; gt[:, 6:] = 2
    >>> pred = np.zeros_like(gt); pred[:, 6:] = 4
    >>> pred[:, :2] = 1; pred[:, 2:4] = 2; pred[:, 4:6] = 3  # cell 1 cut in three
    >>> k = error_kinds(gt, pred)
    >>> k["matched"], k["poor"], k["fp_fragment"]
    (1, 1, 3)
    """
    ov = compute_overlaps(gt, pred)
    n_gt, n_pred = len(ov.gt_labels), len(ov.pred_labels)
    best_gt = np.zeros(n_gt)
    np.maximum.at(best_gt, ov.gt_index, ov.iou)
    best_pred = np.zeros(n_pred)
    np.maximum.at(best_pred, ov.pred_index, ov.iou)
    gt_kind = np.where(best_gt >= 0.5, "matched", np.where(best_gt > 0.1, "poor", "missed"))
    on_cells = np.bincount(ov.pred_index, weights=ov.intersection, minlength=n_pred)
    held = ov.intersection / ov.pred_sizes[ov.pred_index] > share
    n_covering = np.bincount(ov.pred_index[held], minlength=n_pred)
    unmatched = best_pred < 0.5
    background = unmatched & (on_cells < 0.5 * ov.pred_sizes)
    rest = unmatched & ~background
    out: dict[str, np.ndarray | int] = {k: int(np.sum(gt_kind == k)) for k in ("matched", "poor", "missed")}
    out.update(
        fp_background=int(background.sum()),
        fp_merge=int(np.sum(rest & (n_covering >= 2))),
        fp_fragment=int(np.sum(rest & (n_covering == 1))),
        fp_other=int(np.sum(rest & (n_covering == 0))),
        gt_kind=gt_kind,
        fp_labels=ov.pred_labels[unmatched],
    )
    return out

"""Score-ranked average precision (COCO / LACSS style)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .matching import DEFAULT_THRESHOLDS, Overlaps, compute_overlaps

__all__ = ["average_precision_from_detections", "ranked_average_precision", "score_array"]

#: Recall levels of COCO's 101-point interpolation.
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def score_array(scores, pred_labels: np.ndarray) -> np.ndarray:
    """Score of each label in ``pred_labels``.

    ``scores`` is None (every object scores 1), a mapping ``label -> score``,
    or a 1-D array indexed by ``label - 1`` (as returned by
    :func:`lociseg.predict.paste_instances`).
    """
    pred_labels = np.asarray(pred_labels, np.int64)
    if scores is None:
        return np.ones(len(pred_labels))
    if isinstance(scores, Mapping):
        missing = [int(lab) for lab in pred_labels if int(lab) not in scores]
        if missing:
            raise ValueError(f"no score for predicted label(s) {missing[:5]}")
        return np.array([float(scores[int(lab)]) for lab in pred_labels])
    arr = np.asarray(scores, float).ravel()
    if len(pred_labels) and arr.size < pred_labels.max():
        raise ValueError(
            f"scores has {arr.size} entries but the largest predicted label is {pred_labels.max()} "
            "(scores[i] is the score of label i + 1)"
        )
    return arr[pred_labels - 1]


def _greedy_tp(ov: Overlaps, order_rank: np.ndarray, threshold: float) -> np.ndarray:
    """Which predictions are true positives when matched greedily by score (COCO).

    Candidates (IoU >= threshold) that do not conflict are taken at once;
    the rare conflicting ones are resolved in score order, each prediction
    taking its best still-free ground-truth object.
    """
    tp = np.zeros(len(ov.pred_labels), bool)
    cand = np.flatnonzero(ov.iou >= threshold)
    gi, pi = ov.gt_index[cand], ov.pred_index[cand]
    if not len(cand):
        return tp
    g_deg, p_deg = np.bincount(gi)[gi], np.bincount(pi)[pi]
    simple = (g_deg == 1) & (p_deg == 1)
    tp[pi[simple]] = True
    rest = cand[~simple]
    if len(rest):
        # by score rank, then IoU descending: a loop over conflicting pairs only
        order = np.lexsort((-ov.iou[rest], order_rank[ov.pred_index[rest]]))
        used_g, used_p = set(), set()
        for k in rest[order]:
            g, p = int(ov.gt_index[k]), int(ov.pred_index[k])
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            tp[p] = True
    return tp


def average_precision_from_detections(scores: np.ndarray, is_tp: np.ndarray, n_gt: int) -> float:
    """COCO 101-point interpolated AP of score-ranked detections.

    Detections with equal scores form one operating point (they cannot be
    ranked against each other), so with all scores equal AP is the precision
    times the fraction of the 101 recall levels up to the recall reached.

    Parameters
    ----------
    scores : (N,) float ndarray
    is_tp : (N,) bool ndarray
        Whether each detection matched a ground-truth object.
    n_gt : int
        Ground-truth objects (the recall denominator).

    Returns
    -------
    float
        1.0 when there is neither ground truth nor detection, 0.0 when only
        one of them is empty.
    """
    scores, is_tp = np.asarray(scores, float).ravel(), np.asarray(is_tp, bool).ravel()
    if n_gt == 0 or len(scores) == 0:
        return 1.0 if n_gt == 0 and len(scores) == 0 else 0.0
    order = np.argsort(-scores, kind="stable")
    s, ctp = scores[order], np.cumsum(is_tp[order])
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # end of each tie group
    ctp, n_det = ctp[last], last + 1
    precision = ctp / n_det
    recall = ctp / n_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_LEVELS, side="left")
    return float(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean())


def _detections(ov: Overlaps, scores, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = score_array(scores, ov.pred_labels)
    rank = np.empty(len(s), np.int64)
    rank[np.argsort(-s, kind="stable")] = np.arange(len(s))
    tp = (
        np.stack([_greedy_tp(ov, rank, t) for t in thresholds], axis=1)
        if len(thresholds)
        else np.zeros((len(s), 0), bool)
    )
    return s, tp


def ranked_average_precision(
    gt: np.ndarray,
    pred: np.ndarray,
    scores=None,
    thresholds: np.ndarray | list[float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Average precision of score-ranked predicted objects (COCO / LACSS).

    Predictions are sorted by score and matched greedily to ground-truth
    objects with IoU >= threshold; precision–recall is interpolated at 101
    recall levels as in COCO (``pycocotools``), except that tied scores form
    one point.

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.
    scores : None, mapping or (L,) ndarray, optional
        Per-object confidence: ``{label: score}`` or an array with the score
        of label ``i + 1`` at ``i``. None gives every object score 1, so the
        curve has a single point and AP ≈ precision × recall.
    thresholds : sequence of float, optional
        IoU thresholds for ``map`` (default 0.50:0.05:0.95).

    Returns
    -------
    dict
        ``ap50``, ``ap75``, ``map`` (mean over ``thresholds``), ``ap`` (per
        threshold) and ``thresholds``.
    """
    return _ranked_from_overlaps(compute_overlaps(gt, pred), scores, thresholds)[0]


def _ranked_from_overlaps(ov: Overlaps, scores, thresholds) -> tuple[dict, np.ndarray, np.ndarray]:
    thresholds = np.asarray(thresholds, float).ravel()
    extra = [t for t in (0.5, 0.75) if not np.isclose(thresholds, t).any()]
    all_t = np.concatenate([thresholds, extra])
    s, tp = _detections(ov, scores, all_t)
    n_gt = len(ov.gt_labels)
    ap = np.array([average_precision_from_detections(s, tp[:, k], n_gt) for k in range(len(all_t))])
    at = {t: ap[np.flatnonzero(np.isclose(all_t, t))[0]] for t in (0.5, 0.75)}
    result = {
        "ap50": float(at[0.5]),
        "ap75": float(at[0.75]),
        "map": float(ap[: len(thresholds)].mean()) if len(thresholds) else float("nan"),
        "ap": ap[: len(thresholds)],
        "thresholds": thresholds,
    }
    return result, s, tp

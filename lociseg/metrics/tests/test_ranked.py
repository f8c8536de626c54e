"""Score-ranked AP: hand-computed curves, score formats and a slow COCO-style reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lociseg.metrics import average_precision_from_detections, ranked_average_precision


def _scene():
    gt = np.zeros((10, 10), np.int32)
    gt[:4, :4], gt[6:, 6:] = 1, 5
    pred = np.zeros_like(gt)
    pred[:4, :2], pred[6:, 6:], pred[0, 9] = 3, 9, 2  # IoU 0.5, IoU 1, a false positive
    return gt, pred


def test_hand_computed_ap():
    gt, pred = _scene()
    r = ranked_average_precision(gt, pred, {2: 0.95, 3: 0.9, 9: 0.8})
    # ranked: FP, TP, TP -> (P, R) = (0, 0), (1/2, 1/2), (2/3, 1); envelope 2/3 everywhere
    assert r["ap50"] == pytest.approx(2 / 3)
    # at 0.75 only label 9 is a TP: (1/3, 1/2) covers recall levels 0..0.5 (51 of 101)
    assert r["ap75"] == pytest.approx(51 / 101 / 3)
    assert len(r["ap"]) == 10 and r["map"] == pytest.approx(np.mean(r["ap"]))
    # the false positive ranked last no longer hurts
    r = ranked_average_precision(gt, pred, {2: 0.1, 3: 0.9, 9: 0.8})
    assert r["ap50"] == pytest.approx(1.0)


def test_score_formats_agree():
    gt, pred = _scene()
    as_dict = ranked_average_precision(gt, pred, {2: 0.95, 3: 0.9, 9: 0.8})
    arr = np.zeros(9)
    arr[[1, 2, 8]] = [0.95, 0.9, 0.8]  # scores[label - 1]
    as_array = ranked_average_precision(gt, pred, arr)
    np.testing.assert_allclose(as_dict["ap"], as_array["ap"])
    with pytest.raises(ValueError, match="largest predicted label"):
        ranked_average_precision(gt, pred, np.ones(3))
    with pytest.raises(ValueError, match="no score"):
        ranked_average_precision(gt, pred, {2: 1.0})


def test_no_scores_is_one_operating_point():
    gt, pred = _scene()
    r = ranked_average_precision(gt, pred, None)
    # precision 2/3 at recall 1 -> all 101 recall levels
    assert r["ap50"] == pytest.approx(2 / 3)
    assert r["ap75"] == pytest.approx(1 / 3 * 51 / 101)


def test_perfect_and_empty():
    gt, _ = _scene()
    assert ranked_average_precision(gt, gt)["map"] == pytest.approx(1.0)
    empty = np.zeros_like(gt)
    assert ranked_average_precision(empty, empty)["map"] == 1.0
    assert ranked_average_precision(gt, empty)["map"] == 0.0
    assert ranked_average_precision(empty, gt)["map"] == 0.0
    assert average_precision_from_detections(np.zeros(0), np.zeros(0, bool), 3) == 0.0


def _coco_ap_reference(gt, pred, scores, t):
    """Slow COCO evaluation: greedy by score, best IoU free gt, 101-point interpolation."""
    g_ids = [int(v) for v in np.unique(gt[gt > 0])]
    p_ids = sorted((int(v) for v in np.unique(pred[pred > 0])), key=lambda p: -scores[p])
    used, flags = set(), []
    for p in p_ids:
        best, best_iou = None, t
        for g in g_ids:
            if g in used:
                continue
            inter = np.sum((gt == g) & (pred == p))
            iou = inter / np.sum((gt == g) | (pred == p))
            if iou >= best_iou:
                best, best_iou = g, iou
        if best is not None:
            used.add(best)
        flags.append(best is not None)
    tp = np.cumsum(flags)
    prec, rec = tp / np.arange(1, len(flags) + 1), tp / max(len(g_ids), 1)
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    total = 0.0
    for r in np.linspace(0, 1, 101):
        hits = [i for i in range(len(rec)) if rec[i] >= r]
        total += prec[hits[0]] if hits else 0.0
    return total / 101


def _rects(seed, n=7, shape=(24, 24)):
    r = np.random.default_rng(seed)
    out = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        y, x = r.integers(0, shape[0] - 3, size=2)
        h, w = r.integers(3, 9, size=2)
        out[y : y + h, x : x + w] = k
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_agrees_with_slow_coco_reference(seed):
    r = np.random.default_rng(seed)
    gt = _rects(seed)
    pred = np.roll(_rects(seed), tuple(r.integers(-1, 2, size=2)), axis=(0, 1))
    extra = _rects(seed + 1, n=3)
    pred = np.where((pred == 0) & (extra > 0), extra + 10, pred)  # a few spurious objects
    ids = np.unique(pred[pred > 0])
    scores = dict(zip(ids.tolist(), r.permutation(len(ids)) / len(ids) + 0.01))  # distinct scores
    got = ranked_average_precision(gt, pred, scores, thresholds=[0.3, 0.5, 0.75])
    for k, t in enumerate([0.3, 0.5, 0.75]):
        assert got["ap"][k] == pytest.approx(_coco_ap_reference(gt, pred, scores, t)), t

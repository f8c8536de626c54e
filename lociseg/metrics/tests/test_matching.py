"""Overlaps and one-to-one matching: hand-computed cases, properties, a slow reference and StarDist."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from lociseg.metrics import (
    DEFAULT_THRESHOLDS,
    compute_overlaps,
    foreground_iou,
    match_instances,
    overlap_pairs,
)


def _square(shape, y, x, size, value, out=None):
    out = np.zeros(shape, np.int32) if out is None else out
    out[y : y + size, x : x + size] = value
    return out


def test_default_thresholds():
    assert len(DEFAULT_THRESHOLDS) == 10
    np.testing.assert_allclose(DEFAULT_THRESHOLDS, np.arange(10) * 0.05 + 0.5)


def test_two_squares_known_iou():
    gt = _square((10, 10), 2, 2, 4, 3)
    pred = _square((10, 10), 2, 3, 4, 8)  # shifted by one column: 12 shared, 20 in the union
    gi, pi, iou, ga, pa = overlap_pairs(gt, pred)
    assert gi.tolist() == [3] and pi.tolist() == [8]
    assert iou[0] == pytest.approx(0.6)
    assert ga.tolist() == [16] and pa.tolist() == [16]
    m = match_instances(gt, pred)
    assert m.tp.tolist() == [1, 1, 1] + [0] * 7
    assert m.fp.tolist() == m.fn.tolist() == [0, 0, 0] + [1] * 7
    assert m.f1[0] == 1 and m.f1[3] == 0
    assert m.pq[0] == pytest.approx(0.6) and m.mean_matched_iou == pytest.approx(0.6)
    assert m.matched_gt.tolist() == [3] and m.matched_pred.tolist() == [8]


def test_split_object_matches_once():
    gt = np.zeros((6, 10), np.int32)
    gt[1:5, 1:9] = 1
    pred = np.zeros_like(gt)
    pred[1:5, 1:5], pred[1:5, 5:9] = 1, 2  # each half has IoU exactly 0.5 with the gt
    _, _, iou, _, _ = overlap_pairs(gt, pred)
    np.testing.assert_allclose(iou, [0.5, 0.5])
    m = match_instances(gt, pred, thresholds=[0.5, 0.55])
    assert (m.tp.tolist(), m.fp.tolist(), m.fn.tolist()) == ([1, 0], [1, 2], [0, 1])
    assert m.dsb_ap[0] == pytest.approx(0.5) and m.precision[0] == 0.5 and m.recall[0] == 1


def test_merged_objects():
    gt = np.zeros((6, 10), np.int32)
    gt[1:5, 1:5], gt[1:5, 5:9] = 1, 2
    pred = (gt > 0).astype(np.int32) * 4
    m = match_instances(gt, pred, thresholds=[0.5, 0.6])
    assert (m.tp.tolist(), m.fp.tolist(), m.fn.tolist()) == ([1, 0], [0, 1], [1, 2])
    assert m.fnr.tolist() == [0.5, 1.0]
    assert foreground_iou(gt, pred) == 1.0


def test_empty_cases():
    gt = _square((8, 8), 1, 1, 3, 1)
    empty = np.zeros_like(gt)
    m = match_instances(empty, gt)  # nothing to find, one false positive
    assert (m.n_gt, m.n_pred, m.tp[0], m.fp[0], m.fn[0]) == (0, 1, 0, 1, 0)
    assert m.precision[0] == 0 and m.f1[0] == 0 and m.fnr[0] == 0
    m = match_instances(gt, empty)
    assert (m.tp[0], m.fp[0], m.fn[0], m.recall[0], m.f1[0], m.fnr[0]) == (0, 0, 1, 0, 0, 1)
    m = match_instances(empty, empty)
    assert m.n_gt == m.n_pred == 0 and (m.f1 == 1).all() and (m.fnr == 0).all() and m.mean_matched_iou == 1
    assert foreground_iou(empty, empty) == 1.0 and foreground_iou(gt, empty) == 0.0
    assert len(overlap_pairs(empty, empty)[0]) == 0
    assert len(overlap_pairs(np.zeros((0, 5), int), np.zeros((0, 5), int))[0]) == 0


def test_low_threshold_uses_optimal_assignment():
    # gt A = cols 0-9, B = 10-19; pred X = cols 4-13, Y = cols 0-3 (one row).
    # IoU: X-A 6/14, X-B 4/16, Y-A 4/10. Greedy by IoU pairs X-A and leaves Y and B
    # unmatched; the optimal matching X-B, Y-A has two pairs.
    gt = np.zeros((1, 24), np.int32)
    gt[0, :10], gt[0, 10:20] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, 4:14], pred[0, :4] = 5, 6
    m = match_instances(gt, pred, thresholds=[0.2, 0.42])
    assert m.tp.tolist() == [2, 1]
    assert m.sum_iou[0] == pytest.approx(4 / 16 + 4 / 10)


def test_non_consecutive_and_huge_ids():
    gt = _square((10, 10), 0, 0, 4, 7)
    _square((10, 10), 5, 5, 4, 2_000_000_000, gt)
    pred = _square((10, 10), 0, 0, 4, 1_500_000_000)
    _square((10, 10), 5, 6, 4, 3, pred)
    gi, pi, iou, _, _ = overlap_pairs(gt, pred)
    order = np.argsort(gi)
    assert gi[order].tolist() == [7, 2_000_000_000]
    assert pi[order].tolist() == [1_500_000_000, 3]
    np.testing.assert_allclose(iou[order], [1.0, 12 / 20])


def test_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        match_instances(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="negative"):
        match_instances(-np.ones((3, 3), int), np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="integer"):
        match_instances(np.full((3, 3), 0.5), np.zeros((3, 3), int))


# --------------------------------------------------------------------------- properties


def _labels(seed: int, shape=(24, 24), n=6) -> np.ndarray:
    """Random rectangles painted over each other (overlaps give irregular shapes)."""
    r = np.random.default_rng(seed)
    out = np.zeros(shape, np.int32)
    for k in range(1, r.integers(0, n + 1) + 1):
        y, x = r.integers(0, shape[0] - 2), r.integers(0, shape[1] - 2)
        h, w = r.integers(2, 10, size=2)
        out[y : y + h, x : x + w] = k
    return out


def _perturb(labels: np.ndarray, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    out = np.roll(labels, tuple(r.integers(-2, 3, size=2)), axis=(0, 1))
    if out.max() > 1 and r.random() < 0.5:
        out[out == out.max()] = 1  # merge
    return out


seeds = st.integers(0, 10_000)


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_identity_is_perfect(seed):
    gt = _labels(seed)
    m = match_instances(gt, gt)
    n = len(np.unique(gt[gt > 0]))
    assert (m.tp == n).all() and (m.fp == 0).all() and (m.fn == 0).all()
    assert (m.f1 == 1).all() and (m.pq == 1).all()


@settings(max_examples=40, deadline=None)
@given(seeds, seeds)
def test_relabelling_changes_nothing(seed, seed2):
    gt, pred = _labels(seed), _perturb(_labels(seed), seed2)
    r = np.random.default_rng(seed2)
    perm = np.concatenate([[0], r.permutation(np.arange(1, 100)) * 7 + 3])
    a, b = match_instances(gt, pred), match_instances(perm[gt], perm[pred])
    for key in ("tp", "fp", "fn", "f1", "pq", "sum_iou"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key))


@settings(max_examples=40, deadline=None)
@given(seeds, seeds)
def test_swapping_swaps_fp_and_fn(seed, seed2):
    gt, pred = _labels(seed), _perturb(_labels(seed + 1), seed2)
    a, b = match_instances(gt, pred), match_instances(pred, gt)
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_array_equal(a.fp, b.fn)
    np.testing.assert_array_equal(a.fn, b.fp)
    np.testing.assert_allclose(a.precision, b.recall)
    np.testing.assert_allclose(a.f1, b.f1)


@settings(max_examples=20, deadline=None)
@given(seeds, st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.float32]))
def test_dtype_independence(seed, dtype):
    gt, pred = _labels(seed), _perturb(_labels(seed), seed + 1)
    a = match_instances(gt, pred)
    b = match_instances(gt.astype(dtype), pred.astype(dtype))
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_allclose(a.sum_iou, b.sum_iou)


def _slow_iou(gt, pred):
    """Reference: IoU of every (gt, pred) pair with a double loop."""
    out = {}
    for g in np.unique(gt[gt > 0]):
        for p in np.unique(pred[pred > 0]):
            inter = np.sum((gt == g) & (pred == p))
            if inter:
                out[(int(g), int(p))] = inter / np.sum((gt == g) | (pred == p))
    return out


@settings(max_examples=40, deadline=None)
@given(seeds, seeds)
def test_overlaps_agree_with_double_loop(seed, seed2):
    gt, pred = _labels(seed, n=8), _perturb(_labels(seed2, n=8), seed)
    gi, pi, iou, ga, pa = overlap_pairs(gt, pred)
    got = {(int(g), int(p)): v for g, p, v in zip(gi, pi, iou)}
    ref = _slow_iou(gt, pred)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k])
    for g, a in zip(gi, ga):
        assert a == np.sum(gt == g)
    ov = compute_overlaps(gt, pred)
    assert ov.gt_sizes.sum() == np.count_nonzero(gt) and ov.pred_sizes.sum() == np.count_nonzero(pred)


# --------------------------------------------------------------------------- StarDist on real images


def _perturbed_real(labels: np.ndarray, seed: int) -> np.ndarray:
    """Erode some nuclei, shift the image, drop a few and merge some touching pairs."""
    r = np.random.default_rng(seed)
    out = labels.copy()
    ids = np.unique(labels[labels > 0])
    eroded = ndi.grey_erosion(labels, size=3)
    pick = np.isin(labels, r.choice(ids, len(ids) // 3, replace=False))
    out[pick] = eroded[pick]
    out = np.roll(out, (1, -2), axis=(0, 1))
    out[np.isin(out, r.choice(ids, max(1, len(ids) // 10), replace=False))] = 0
    # merge: relabel some objects to their neighbour's id
    for a in r.choice(ids, max(1, len(ids) // 10), replace=False):
        near = np.unique(out[ndi.binary_dilation(out == a, iterations=2)])
        near = near[(near > 0) & (near != a)]
        if len(near):
            out[out == a] = near[0]
    return out


@pytest.mark.parametrize("index", [0, 7, 30, 51])
def test_agrees_with_stardist_on_dsb(data_root, index):
    sd = pytest.importorskip("stardist.matching", reason="independent reference needs `pip install stardist numba`")
    from lociseg.data import load_dataset

    sample = load_dataset("dsb2018-test", root=data_root)[index]
    gt = sample.labels
    pred = _perturbed_real(gt, index)
    thresholds = [0.1, 0.3, *DEFAULT_THRESHOLDS]
    m = match_instances(gt, pred, thresholds=thresholds)
    for k, t in enumerate(thresholds):
        ref = sd.matching(gt, pred, thresh=t)
        assert (m.tp[k], m.fp[k], m.fn[k]) == (ref.tp, ref.fp, ref.fn), t
        assert m.precision[k] == pytest.approx(ref.precision)
        assert m.recall[k] == pytest.approx(ref.recall)
        assert m.f1[k] == pytest.approx(ref.f1)
        assert m.dsb_ap[k] == pytest.approx(ref.accuracy)
        assert m.pq[k] == pytest.approx(ref.panoptic_quality)
    ref = sd.matching(gt, pred, thresh=0.5)
    assert m.mean_matched_iou == pytest.approx(ref.mean_matched_score)
    assert m.tp[2] < m.n_gt  # the perturbation really costs matches


@pytest.mark.slow
def test_agrees_with_stardist_on_all_dsb_test_images(data_root):
    sd = pytest.importorskip("stardist.matching", reason="independent reference needs `pip install stardist numba`")
    from lociseg.data import load_dataset

    for i, sample in enumerate(load_dataset("dsb2018-test", root=data_root)):
        gt = sample.labels
        pred = _perturbed_real(gt, 100 + i)
        m = match_instances(gt, pred, thresholds=[0.3, 0.5, 0.7, 0.9])
        for k, t in enumerate([0.3, 0.5, 0.7, 0.9]):
            ref = sd.matching(gt, pred, thresh=t)
            assert (m.tp[k], m.fp[k], m.fn[k]) == (ref.tp, ref.fp, ref.fn), (sample.name, t)
            assert m.pq[k] == pytest.approx(ref.panoptic_quality), (sample.name, t)

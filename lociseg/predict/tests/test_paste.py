import numpy as np
from scipy import ndimage as ndi

from lociseg.predict import fill_label_holes, paste_instances
from lociseg.structures import Instances


def _disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)


def _instances(masks, origins, scores):
    masks = np.asarray(masks, np.float32)
    origins = np.asarray(origins, np.int64)
    locs = origins + np.array(masks.shape[1:]) / 2
    return Instances(locs.astype(np.float32), np.asarray(scores, np.float32), masks, origins)


def test_higher_score_wins_overlap():
    a = _disc(20, 20, 10, 10, 8)
    inst = _instances([a, a], [[0, 0], [0, 6]], [0.3, 0.9])
    labels, kept = paste_instances(inst, (20, 30), min_area=1)
    assert labels.dtype == np.uint16
    # label 1 is the best instance (index 1), whole; index 0 keeps only its free part
    assert list(kept) == [1, 0]
    np.testing.assert_array_equal(labels[:, 6:26] == 1, a > 0.5)
    assert (labels == 2).sum() == ((a > 0.5).sum() - ((a[:, :14] > 0.5) & (a[:, 6:] > 0.5)).sum())
    # swapping scores flips who wins
    inst.scores[:] = [0.9, 0.3]
    labels, kept = paste_instances(inst, (20, 30), min_area=1)
    np.testing.assert_array_equal(labels[:, :20] == 1, a > 0.5)


def test_threshold_and_window_clipping():
    m = np.zeros((10, 10), np.float32)
    m[2:8, 2:8] = 0.6
    m[4:6, 4:6] = 0.95
    inst = _instances([m], [[-3, 25]], [1.0])
    labels, kept = paste_instances(inst, (20, 30), threshold=0.5, min_area=1)
    assert (labels == 1).sum() == 5 * 3  # rows 0..4 (2..7 shifted by -3), cols 27..29
    labels, _ = paste_instances(inst, (20, 30), threshold=0.9, min_area=1)
    assert (labels == 1).sum() == 1 * 2  # the 0.95 core: rows 1..2, col 29 only
    # window fully outside the image: nothing, no error
    inst = _instances([m], [[100, 100]], [1.0])
    labels, kept = paste_instances(inst, (20, 30), min_area=1)
    assert labels.max() == 0 and kept.size == 0


def test_fragments_and_small_cells_dropped():
    m = np.zeros((30, 30), np.float32)
    m[2:20, 2:20] = 1  # main body, 324 px
    m[25:27, 25:27] = 1  # stray 4 px fragment
    tiny = np.zeros((30, 30), np.float32)
    tiny[0:2, 0:3] = 1  # 6 px cell
    inst = _instances([m, tiny], [[0, 0], [40, 40]], [0.9, 0.8])
    labels, kept = paste_instances(inst, (80, 80), min_area=8)
    assert list(kept) == [0]
    assert (labels == 1).sum() == 324
    assert labels[25, 25] == 0
    labels, kept = paste_instances(inst, (80, 80), min_area=1)
    assert list(kept) == [0, 1]


def test_covered_duplicate_dropped_and_pixels_free_for_others():
    a = _disc(20, 20, 10, 10, 8)
    # instance 1 is a near-duplicate of 0 (shifted 1 px); 2 overlaps 0 a little
    inst = _instances([a, a, a], [[0, 0], [0, 1], [0, 14]], [0.9, 0.8, 0.5])
    labels, kept = paste_instances(inst, (20, 40), min_area=1, min_fragment_fraction=0.25)
    assert list(kept) == [0, 2]
    # the dropped duplicate claims nothing: instance 2 gets everything not taken by 0
    both = (a[:, 14:20] > 0.5) & (a[:, 0:6] > 0.5)
    assert (labels == 2).sum() == (a > 0.5).sum() - both.sum()
    labels, kept = paste_instances(inst, (20, 40), min_area=1, min_fragment_fraction=0.0)
    assert len(kept) == 3


def test_empty_and_ids_sequential(rng):
    labels, kept = paste_instances(Instances.empty((8, 8)), (5, 6))
    assert labels.shape == (5, 6) and labels.max() == 0 and kept.size == 0
    n = 50
    masks = np.ones((n, 4, 4), np.float32)
    origins = np.stack([np.arange(n) // 10 * 5, np.arange(n) % 10 * 5], 1)
    scores = rng.random(n)
    labels, kept = paste_instances(_instances(masks, origins, scores), (25, 50), min_area=1)
    assert np.array_equal(np.unique(labels), np.arange(n + 1))
    assert np.all(np.diff(scores[kept]) <= 0)  # ids in descending score order


def test_uint32_when_many_labels():
    n = 70000
    masks = np.ones((n, 1, 1), np.float32)
    origins = np.stack([np.arange(n) // 300, np.arange(n) % 300], 1)
    labels, kept = paste_instances(_instances(masks, origins, np.ones(n)), (300, 300), min_area=1)
    assert labels.dtype == np.uint32 and labels.max() == n


def _ramp(h, w, cy, cx, r):
    """Disc whose probability falls from 1 at the centre to 0.5 at radius r."""
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(yy - cy, xx - cx)
    return np.where(d <= r, 1 - 0.5 * d / r, 0).astype(np.float32)


def test_overlaps_go_to_most_confident_mask():
    a = _ramp(20, 20, 10, 10, 9)
    # two touching cells, centres 12 px apart; the right one has the higher score
    inst = _instances([a, a], [[0, 0], [0, 12]], [0.3, 0.9])
    by_score, kept_s = paste_instances(inst, (20, 32), min_area=1)
    by_prob, kept_p = paste_instances(inst, (20, 32), min_area=1, overlaps="probability")
    assert list(kept_s) == list(kept_p) == [1, 0]
    # by score the better cell takes the whole overlap, reaching past the midline (x = 16)
    assert (by_score[10, :16] == 1).any()
    # by probability the border is the midline between the two centres
    assert (by_prob[10, 11:16] == 2).all() and (by_prob[10, 17:22] == 1).all()
    assert (by_prob > 0).sum() == (by_score > 0).sum()  # same pixels, different owners
    # a tie in probability (column 16, equidistant) goes to the higher score
    assert by_prob[10, 16] == 1


def test_probability_overlaps_keep_one_piece_and_drop_slivers():
    big = 0.95 * _ramp(20, 20, 10, 10, 9)
    small = np.zeros((20, 20), np.float32)
    small[9:12, 0:20] = 0.99  # a thin, confident bar across the big cell, cutting it in two
    inst = _instances([big, small], [[0, 0], [0, 0]], [0.9, 0.8])
    labels, kept = paste_instances(inst, (20, 20), min_area=1, min_fragment_fraction=0.0, overlaps="probability")
    assert list(kept) == [0, 1]
    # the big cell keeps only its larger half; the bar takes the middle rows
    for k in (1, 2):
        assert ndi.label(labels == k)[1] == 1
    assert (labels[9:12, 2:18] == 2).all()
    labels, kept = paste_instances(inst, (20, 20), min_area=70, min_fragment_fraction=0.0, overlaps="probability")
    assert list(kept) == [0]  # the bar (< 70 px) is dropped after the reassignment
    with np.testing.assert_raises(ValueError):
        paste_instances(inst, (20, 20), overlaps="area")


def test_fill_label_holes_fills_one_cells_holes_only():
    labels = np.zeros((30, 40), np.int32)
    labels[2:12, 2:12] = 1
    labels[5:8, 5:8] = 0  # a hole of cell 1
    labels[2:12, 20:26], labels[2:12, 28:34] = 2, 3
    labels[2:4, 26:28] = labels[10:12, 26:28] = 4  # 2, 3 and 4 wall in a pocket together: nobody's hole
    labels[15:28, 15:28] = 5
    labels[18:25, 18:25] = 6  # another cell inside cell 5 stays itself ...
    labels[18:25, 18] = 0  # ... and the background between them goes to 5
    labels[20:30, 0:6] = 7
    labels[22:30, 2:4] = 0  # a notch open to the image border is no hole
    out = fill_label_holes(labels.copy())
    assert (out[5:8, 5:8] == 1).all()
    assert (out[4:10, 26:28] == 0).all()
    assert (out[18:25, 18] == 5).all() and (out[18:25, 19:25] == 6).all()
    assert (out[22:30, 2:4] == 0).all()
    changed = out != labels
    assert changed.sum() == 9 + 7


def test_paste_fills_holes_unless_asked_not_to():
    ring = _disc(21, 21, 10, 10, 9) - _disc(21, 21, 10, 10, 3)
    inst = _instances([ring], [[2, 2]], [0.9])
    filled, _ = paste_instances(inst, (25, 25), min_area=1)
    kept_holes, _ = paste_instances(inst, (25, 25), min_area=1, fill_holes=False)
    assert (filled == 1).sum() == (_disc(21, 21, 10, 10, 9) > 0.5).sum()
    assert (kept_holes == 1).sum() == (ring > 0.5).sum()
    assert ndi.binary_fill_holes(kept_holes > 0).sum() == (filled > 0).sum()

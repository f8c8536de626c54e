"""Tests of instance extraction from a 3-class probability map."""

from __future__ import annotations

import numpy as np

from lociseg.models.semantic import (
    labels_to_instances,
    three_class_to_instances,
    three_class_to_labels,
)


def _probs(classes: np.ndarray) -> np.ndarray:
    """One-hot-ish probabilities (0.9 on the given class) of a class map."""
    p = np.full((3, *classes.shape), 0.05, np.float32)
    for k in range(3):
        p[k][classes == k] = 0.9
    return p


def _hand_made_classes() -> np.ndarray:
    c = np.zeros((12, 14), int)
    c[2:8, 1:11] = 2  # one cell area, all boundary ...
    c[3:7, 2:5] = 1  # ... with two interior seeds
    c[3:7, 7:10] = 1
    c[10, 12] = 1  # a 1-pixel seed: below min_seed_size, dropped
    return c


def test_two_touching_cells_split_at_the_boundary():
    labels = three_class_to_labels(_probs(_hand_made_classes()), min_seed_size=2, min_size=4)
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2}
    a, b = labels[4, 3], labels[4, 8]
    assert a != b and a > 0 and b > 0
    # cell area is fully covered, split between columns 5 and 6 (each side nearest its seed)
    assert (labels[2:8, 1:6] == a).all() and (labels[2:8, 6:11] == b).all()
    assert (labels[_hand_made_classes() == 0] == 0).all()


def test_min_size_removes_small_objects():
    c = np.zeros((10, 10), int)
    c[1:3, 1:3] = 1  # 4 px
    c[5:9, 5:9] = 1  # 16 px
    labels = three_class_to_labels(_probs(c), min_seed_size=1, min_size=5)
    assert labels.max() == 1 and (labels > 0).sum() == 16


def test_empty_map_gives_no_objects():
    p = _probs(np.zeros((8, 8), int))
    assert three_class_to_labels(p).max() == 0
    assert len(three_class_to_instances(p)) == 0


def _paste(inst, shape):
    out = np.zeros(shape, np.int32)
    for k in range(len(inst)):
        oy, ox = inst.origins[k]
        ys, xs = np.nonzero(inst.masks[k] > 0.5)
        ys, xs = ys + oy, xs + ox
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        out[ys[ok], xs[ok]] = k + 1
    return out


def test_labels_to_instances_round_trip_and_scores():
    labels = np.zeros((20, 30), np.int32)
    labels[0:5, 0:12] = 1  # touches the corner: its window reaches outside the image
    labels[8:18, 20:24] = 3  # gap in ids
    labels[10:12, 2:4] = 4
    score = np.zeros(labels.shape, np.float32)
    score[labels == 3] = 0.8
    score[9, 20] = 0.0  # one lower pixel inside object 3
    inst = labels_to_instances(labels, score)
    assert len(inst) == 3
    assert inst.masks.shape == (3, 10, 12)
    pasted = _paste(inst, labels.shape)
    ids = np.array([1, 3, 4])
    np.testing.assert_array_equal(ids[pasted[pasted > 0] - 1], labels[pasted > 0])
    np.testing.assert_array_equal(pasted > 0, labels > 0)
    np.testing.assert_allclose(inst.locations[1], [12.5, 21.5])
    np.testing.assert_allclose(inst.scores, [0.0, 0.8 * 39 / 40, 0.0], atol=1e-6)  # 40 px, one at 0

"""Tests of the 3-class targets and losses (hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lociseg.losses.semantic import (
    class_weighted_cross_entropy,
    foreground_cross_entropy,
    labels_to_3class,
    labels_to_3class_torch,
)


def test_labels_to_3class_hand_made():
    labels = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 2, 2, 0],
            [0, 1, 1, 1, 2, 2, 0],
            [0, 1, 1, 1, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    )
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 2, 0],
            [0, 2, 1, 2, 2, 2, 0],
            [0, 2, 2, 2, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    )
    out = labels_to_3class(labels, boundary_width=1)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)


def test_labels_to_3class_width_and_image_border():
    labels = np.zeros((9, 9), int)
    labels[1:8, 1:8] = 5
    out = labels_to_3class(labels, boundary_width=2)
    assert (out == 1).sum() == 9 and (out[3:6, 3:6] == 1).all()
    assert (out == 2).sum() == 49 - 9
    # An object filling the image touches no background: all interior.
    assert (labels_to_3class(np.full((4, 4), 3), 2) == 1).all()


def test_labels_to_3class_torch_matches_numpy(rng):
    labels = rng.integers(0, 4, size=(2, 20, 24))
    labels[:, 5:15, 5:15] = 7
    out = labels_to_3class_torch(torch.from_numpy(labels), 2).numpy()
    for b in range(2):
        np.testing.assert_array_equal(out[b], labels_to_3class(labels[b], 2))


def test_weighted_cross_entropy_by_hand():
    # pixel A: uniform logits, target 0 -> ln 3; pixel B: softmax (1/4, 1/4, 1/2), target 2 -> ln 2;
    # pixel C ignored. Weights (1, 1, 10): (1*ln3 + 10*ln2) / 11.
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)], [5.0, -3.0, 1.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[[0, 2, -1]]])
    loss = class_weighted_cross_entropy(logits, target, (1.0, 1.0, 10.0))
    assert loss.item() == pytest.approx((math.log(3) + 10 * math.log(2)) / 11, rel=1e-6)
    # Unit weights: plain mean over the two kept pixels.
    loss1 = class_weighted_cross_entropy(logits, target, (1.0, 1.0, 1.0))
    assert loss1.item() == pytest.approx((math.log(3) + math.log(2)) / 2, rel=1e-6)


def test_weighted_cross_entropy_all_ignored_is_zero_with_gradient():
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = class_weighted_cross_entropy(logits, torch.full((1, 2, 2), -1), (1, 1, 10))
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and not logits.grad.any()  # attached to the graph, nothing pulls


def test_weighted_cross_entropy_rejects_wrong_weight_count():
    with pytest.raises(ValueError):
        class_weighted_cross_entropy(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), (1, 10))


def test_foreground_cross_entropy_by_hand():
    # logits (0, 0, 0): P(fg) = 2/3. Foreground pixel -> -ln(2/3); background pixel -> -ln(1/3).
    logits = torch.zeros(1, 3, 1, 2)
    fg = torch.tensor([[[1.0, 0.0]]])
    loss = foreground_cross_entropy(logits, fg)
    assert loss.item() == pytest.approx((-math.log(2 / 3) - math.log(1 / 3)) / 2, rel=1e-6)
    valid = torch.tensor([[[1.0, 0.0]]])
    assert foreground_cross_entropy(logits, fg, valid).item() == pytest.approx(-math.log(2 / 3), rel=1e-6)

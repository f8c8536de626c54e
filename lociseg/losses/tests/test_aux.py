"""Aux losses: border targets and which way the gradients go."""

import math

import pytest
import torch

from lociseg.losses.aux import aux_boundary_target, aux_losses, edge_magnitude


def test_edge_target_of_a_step_by_hand():
    m = torch.zeros(1, 4, 4)
    m[0, :, 2:] = 1
    e = edge_magnitude(m)
    # Sobel/4 across a unit step: 1 on the two columns beside it, 0 elsewhere (replicate padding).
    assert torch.allclose(e[0, :, 1:3], torch.ones(4, 2), atol=1e-3)
    assert torch.allclose(e[0, :, [0, 3]], torch.zeros(4, 2), atol=1e-3)
    t = aux_boundary_target(m, torch.tensor([[1, 1]]), (6, 6))
    assert t[2, 2].item() == pytest.approx(math.tanh(1.0), abs=1e-3)
    assert t[0].abs().max() < 1e-3
    assert aux_boundary_target(torch.zeros(0, 4, 4), torch.zeros(0, 2, dtype=torch.long), (5, 5)).shape == (5, 5)


def test_aux_losses_gradients_go_the_right_way():
    logits = torch.zeros(2, 6, 6)
    logits[:, 1:5, 1:5] = 4.0
    logits.requires_grad_(True)
    aux = torch.full((10, 10), 0.2, requires_grad=True)
    out = aux_losses(aux, logits, torch.tensor([[0, 0], [4, 4]]))
    out["aux"].backward(retain_graph=True)
    assert logits.grad is None and aux.grad.abs().sum() > 0  # target detached
    aux.grad = None
    out["aux_consistency"].backward()
    assert aux.grad is None and logits.grad.abs().sum() > 0  # aux detached
    # perfect aux prediction: zero aux loss
    target = aux_boundary_target(torch.sigmoid(logits.detach()), torch.tensor([[0, 0], [4, 4]]), (10, 10))
    again = aux_losses(target, logits.detach(), torch.tensor([[0, 0], [4, 4]]))
    assert again["aux"].item() == pytest.approx(0.0, abs=1e-7)

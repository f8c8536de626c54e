"""Aux boundary net: receptive field, targets and which way the gradients go."""

import math

import pytest
import torch

from lociseg.models.aux import (
    AuxBoundaryNet,
    ForegroundHead,
    aux_boundary_target,
    aux_losses,
    edge_magnitude,
)


def test_receptive_field_is_nine_pixels():
    torch.manual_seed(0)
    net = AuxBoundaryNet(2).double()
    assert net.receptive_field == 9
    x = torch.zeros(1, 2, 21, 21, dtype=torch.float64, requires_grad=True)
    net(x)[0, 10, 10].backward()
    reach = (x.grad.abs().sum(1)[0] > 0).nonzero()
    assert reach.min().item() >= 6 and reach.max().item() <= 14  # 10 +- 4
    assert net(torch.rand(2, 2, 16, 12, dtype=torch.float64)).shape == (2, 16, 12)
    assert ForegroundHead(2)(torch.rand(1, 2, 8, 8)).shape == (1, 8, 8)


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

"""Aux boundary net: receptive field."""

import torch

from lociseg.models.aux import AuxBoundaryNet, ForegroundHead


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

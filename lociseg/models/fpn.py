"""Feature pyramid network: top-down fusion of the encoder's four levels."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FPN(nn.Module):
    """Lateral 1x1 convs, nearest-neighbour top-down pathway, 3x3 output convs.

    Parameters
    ----------
    in_channels : list of int
        Channels of the encoder levels, finest first.
    out_channels : int
        Channels of every output level.
    num_outputs : int, optional
        Output only the finest ``num_outputs`` levels (all by default); heads
        that read one level need no output convs for the others.
    """

    def __init__(self, in_channels: list[int], out_channels: int, num_outputs: int | None = None) -> None:
        super().__init__()
        self.num_outputs = len(in_channels) if num_outputs is None else num_outputs
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in range(self.num_outputs)
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Output levels, finest first."""
        x = self.lateral[-1](feats[-1])
        merged = [x]
        for i in range(len(feats) - 2, -1, -1):
            x = self.lateral[i](feats[i]) + F.interpolate(x, size=feats[i].shape[-2:], mode="nearest")
            merged.insert(0, x)
        return [conv(m) for conv, m in zip(self.output, merged)]

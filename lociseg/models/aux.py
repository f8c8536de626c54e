"""Training-only auxiliary networks for weak supervision.

:class:`AuxBoundaryNet` sees the image through a ~9 px receptive field and
predicts where cell borders are. Its target is the edge map of the main
network's own instance masks (detached), so it can only learn the part of
those borders that is *locally visible* in the image; the main network is in
turn pulled toward the aux prediction (aux detached). Borders that weak
losses alone place arbitrarily (between touching cells, at faint cell edges)
thus snap to image evidence (the losses that couple the two networks are
:mod:`lociseg.losses.aux`). Neither network is used at inference, so the
prediction cost is unchanged.

:class:`ForegroundHead` is the learned foreground collaborator of the
points-only mode (:func:`lociseg.losses.weak.points_mode_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AuxBoundaryNet", "ForegroundHead"]


def _small_cnn(in_channels: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_channels
    for _ in range(depth - 1):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
        c = width
    layers.append(nn.Conv2d(c, 1, 3, padding=1))
    return nn.Sequential(*layers)


class AuxBoundaryNet(nn.Module):
    """Small-receptive-field cell-border predictor (training only).

    Parameters
    ----------
    in_channels : int
        Image channels.
    width : int
        Feature channels of the hidden layers.
    depth : int
        Number of 3x3 convolutions; the receptive field is ``2 * depth + 1``
        pixels (9 px for the default 4), too small to see whole cells, so the
        net cannot copy the main network's shapes -- only local edges.

    Forward: (B, C, H, W) image -> (B, H, W) border map in [0, 1].
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.body = _small_cnn(in_channels, width, depth)

    @property
    def receptive_field(self) -> int:
        """Receptive field in pixels."""
        return 2 * sum(1 for m in self.body if isinstance(m, nn.Conv2d)) + 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(image)).squeeze(1)


class ForegroundHead(nn.Module):
    """Small image-to-foreground network: the collaborator of the points-only mode.

    Forward: (B, C, H, W) image -> (B, H, W) foreground **logits**.
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 5) -> None:
        super().__init__()
        self.body = _small_cnn(in_channels, width, depth)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image).squeeze(1)

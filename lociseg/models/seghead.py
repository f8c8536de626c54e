"""Per-location segmentation head.

For each cell location the head crops a fixed window of stride-``s``
features around it (``window`` grid cells = ``window * s`` image pixels),
adds an encoding of each window pixel's position relative to the location
(the exact sub-pixel offset through a 1x1 conv, plus a learned per-position
embedding), runs a small conv stack and upsamples the mask logits to image
resolution. The expensive convolutions run once on the dense feature map;
per instance only a cheap stack (1x1 convolutions by default) runs.

With a ``prior_radius`` the head adds a fixed disc around each location to
its logits (:func:`location_prior`): masks start as a cell-sized blob rather
than a window-wide haze of probability 0.5. Under the weak losses the haze is
mostly background, so every term but coverage says shrink, and masks
collapse to empty in the first few dozen steps, regrowing only hundreds to
thousands of steps later or never (BENCHMARKS.md, issue 33).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..ops.windows import gather_windows
from .lpn import grid_centres

#: Logit of the location prior at the location, and its floor far from it.
PRIOR_PEAK, PRIOR_FLOOR = 3.0, -4.0


def location_prior(origins: torch.Tensor, locations: torch.Tensor, window: int, radius: float) -> torch.Tensor:
    """Logits ``PRIOR_PEAK * (1 - d / radius)``, floored at ``PRIOR_FLOOR``, of every window pixel.

    ``d`` is the pixel's distance to its instance's location: +3 (probability
    0.95) at the location, 0 (0.5) at ``radius``, -4 (0.02) from 7/3 of it on.

    Parameters
    ----------
    origins : (N, 2) long tensor
        Window top-left pixels (y, x).
    locations : (N, 2) tensor
        Locations (y, x) in image pixels.
    window : int
        Window side in pixels.
    radius : float
        Disc radius in pixels.

    Returns
    -------
    (N, window, window) tensor
    """
    ramp = torch.arange(window, device=locations.device, dtype=torch.float32) + 0.5
    dy = origins[:, 0, None, None].float() + ramp[None, :, None] - locations[:, 0, None, None].float()
    dx = origins[:, 1, None, None].float() + ramp[None, None, :] - locations[:, 1, None, None].float()
    d = torch.sqrt(dy * dy + dx * dx)
    return (PRIOR_PEAK * (1 - d / radius)).clamp(PRIOR_FLOOR, PRIOR_PEAK)


class SegHead(nn.Module):
    """Mask logits in fixed windows around given locations.

    Parameters
    ----------
    channels : int
        Channels of the input feature level.
    width : int
        Channels inside the head.
    window : int
        Window side in grid cells (24 at stride 4 = 96 image px).
    stride : int
        Stride of the feature level.
    instance_kernel : {1, 3}
        Kernel of the per-instance convolution.
    prior_radius : float
        Radius (px) of the :func:`location_prior` added to the logits; 0: none.
    """

    def __init__(
        self,
        channels: int,
        width: int = 32,
        window: int = 24,
        stride: int = 4,
        *,
        instance_kernel: int = 1,
        prior_radius: float = 0.0,
    ) -> None:
        super().__init__()
        self.window, self.stride, self.prior_radius = window, stride, prior_radius
        self.dense = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1)
        )
        self.position = nn.Conv2d(2, width, 1)
        self.embedding = nn.Parameter(torch.zeros(width, window, window))
        self.instance = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(width, width, instance_kernel, padding=instance_kernel // 2),
            nn.GELU(),
            nn.Conv2d(width, 1, 1),
        )

    @property
    def window_px(self) -> int:
        """Window side in image pixels."""
        return self.window * self.stride

    def dense_features(self, features: torch.Tensor) -> torch.Tensor:
        """Per-image part of the head, (B, width, h, w); run once per image."""
        return self.dense(features)

    def origins(self, locations: torch.Tensor) -> torch.Tensor:
        """Top-left grid cells (N, 2) of the windows centred on ``locations`` (image px)."""
        return torch.floor(locations / self.stride).long() - self.window // 2

    def forward(self, dense: torch.Tensor, locations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits of the instances of one image.

        Parameters
        ----------
        dense : (width, h, w)
            :meth:`dense_features` of one image.
        locations : (N, 2)
            Cell locations (y, x) in image pixels.

        Returns
        -------
        logits : (N, window_px, window_px)
        origins : (N, 2) long
            Image coordinates of each window's top-left pixel.
        """
        n, w = len(locations), self.window
        grid0 = self.origins(locations)
        if n == 0:
            return dense.new_zeros((0, self.window_px, self.window_px)), grid0 * self.stride
        crops = gather_windows(dense, grid0, (w, w))[0].permute(1, 0, 2, 3)  # (N, width, w, w)
        centres = grid_centres((w, w), self.stride, dense.device)  # relative to the window origin
        rel = centres[None] + (grid0[:, None, None, :] * self.stride).float() - locations[:, None, None, :].float()
        rel = (rel / (self.window_px / 2)).permute(0, 3, 1, 2)
        x = crops + self.position(rel) + self.embedding
        logits = self.instance(x)
        logits = F.interpolate(logits, scale_factor=self.stride, mode="bilinear", align_corners=False)[:, 0]
        origins = grid0 * self.stride
        if self.prior_radius > 0:
            logits = logits + location_prior(origins, locations, self.window_px, self.prior_radius).to(logits.dtype)
        return logits, origins

"""ConvNeXt-style encoder with named size presets.

The encoder returns feature maps at strides 4, 8, 16 and 32; the LACSS heads
read the stride-4 level after the FPN (:mod:`lociseg.models.fpn`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..config import Config, bounded
from ..errors import ConfigError

#: Named presets: (widths per stage, blocks per stage). ``small`` is ConvNeXt-T.
PRESETS: dict[str, tuple[list[int], list[int]]] = {
    "tiny": ([32, 64, 128, 256], [1, 1, 3, 1]),
    "base": ([48, 96, 192, 384], [2, 2, 6, 2]),
    "small": ([96, 192, 384, 768], [3, 3, 9, 3]),
}


@dataclass
class BackboneConfig(Config):
    """Encoder settings.

    Attributes
    ----------
    preset : {"tiny", "base", "small"}
        Named size; ``widths``/``depths`` override it when non-empty.
    widths, depths : list of int
        Channels and ConvNeXt blocks of the four stages.
    drop_path : float
        Stochastic-depth rate of the last block (linearly ramped).
    """

    preset: str = "tiny"
    widths: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    drop_path: float = bounded(0.0, ge=0, lt=1)

    def resolved(self) -> tuple[list[int], list[int]]:
        """The (widths, depths) in effect."""
        if self.preset not in PRESETS:
            raise ConfigError(f"backbone.preset: unknown {self.preset!r}; choose from {sorted(PRESETS)}")
        widths, depths = PRESETS[self.preset]
        widths = list(self.widths or widths)
        depths = list(self.depths or depths)
        if len(widths) != 4 or len(depths) != 4:
            raise ConfigError("backbone.widths and backbone.depths need 4 values (one per stage)")
        return widths, depths


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), (self.weight.shape[0],), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, layer norm, inverted-bottleneck MLP, layer scale, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        y = y.permute(0, 3, 1, 2)
        if self.training and self.drop_path > 0:
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path
            y = y * keep / (1 - self.drop_path)
        return x + y


class ConvNeXt(nn.Module):
    """Four-stage ConvNeXt encoder; ``forward`` returns features at strides 4, 8, 16, 32."""

    def __init__(self, in_channels: int, config: BackboneConfig | None = None) -> None:
        super().__init__()
        config = config or BackboneConfig()
        widths, depths = config.resolved()
        self.widths = widths
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 4, stride=4), LayerNorm2d(widths[0]))
        total = sum(depths)
        rates = [config.drop_path * i / max(total - 1, 1) for i in range(total)]
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        k = 0
        for i, (w, d) in enumerate(zip(widths, depths)):
            self.downs.append(
                nn.Identity()
                if i == 0
                else nn.Sequential(LayerNorm2d(widths[i - 1]), nn.Conv2d(widths[i - 1], w, 2, stride=2))
            )
            self.stages.append(nn.Sequential(*[ConvNeXtBlock(w, rates[k + j]) for j in range(d)]))
            k += d
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x))
            feats.append(x)
        return feats


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

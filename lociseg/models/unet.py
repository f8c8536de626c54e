"""3-class U-Net baseline (background / interior / boundary). Owned by the U-Net work; see issue 5."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config


@dataclass
class UNetConfig(Config):
    """Configuration of the U-Net baseline (extended by the U-Net implementation)."""

    in_channels: int = 2
    base_channels: int = 32

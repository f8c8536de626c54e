"""Build a model from its configuration."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import SegmentationModel
from .lacss import LacssConfig, LacssModel
from .unet import UNetConfig, UNetModel


def build_model(config: Config) -> SegmentationModel:
    """The :class:`SegmentationModel` a config describes (LACSS or the U-Net baseline)."""
    if isinstance(config, LacssConfig):
        return LacssModel(config)
    if isinstance(config, UNetConfig):
        return UNetModel(config)
    raise ConfigError(f"no model type for config {type(config).__name__}")

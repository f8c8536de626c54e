"""The model kinds by name, and building a model from its configuration."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import SegmentationModel
from .lacss import LacssConfig, LacssModel
from .unet import UNetConfig, UNetModel

__all__ = ["MODEL_TYPES", "build_model", "model_type"]

#: Every model kind under its ``model_type`` name (the section of a run's
#: config that describes it): its config class and the model it builds.
MODEL_TYPES: dict[str, tuple[type[Config], type[SegmentationModel]]] = {
    "lacss": (LacssConfig, LacssModel),
    "unet": (UNetConfig, UNetModel),
}


def model_type(config: Config) -> str:
    """The ``model_type`` name of a model config (``lacss``, ``unet``).

    Raises
    ------
    ConfigError
        ``config`` is not the config of a registered model kind.
    """
    for name, (config_class, _) in MODEL_TYPES.items():
        if isinstance(config, config_class):
            return name
    raise ConfigError(f"no model type for config {type(config).__name__}")


def build_model(config: Config) -> SegmentationModel:
    """The :class:`SegmentationModel` a config describes (LACSS or the U-Net baseline)."""
    return MODEL_TYPES[model_type(config)][1](config)

"""Segmentation models: LACSS (backbone, FPN, LPN, segmentation head) and the U-Net baseline.

>>> from lociseg.models import LacssConfig, build_model
>>> model = build_model(LacssConfig())          # tiny ConvNeXt preset
"""

from .backbone import PRESETS, BackboneConfig, ConvNeXt
from .base import InputSpec, SegmentationModel
from .fpn import FPN
from .lacss import LacssConfig, LacssModel
from .lpn import LPNHead, decode_locations, lpn_targets
from .registry import MODEL_TYPES, build_model, model_type
from .seghead import SegHead

__all__ = [
    "PRESETS",
    "BackboneConfig",
    "ConvNeXt",
    "InputSpec",
    "SegmentationModel",
    "FPN",
    "LacssConfig",
    "LacssModel",
    "LPNHead",
    "decode_locations",
    "lpn_targets",
    "build_model",
    "model_type",
    "MODEL_TYPES",
    "SegHead",
]

"""The plan of one large image's block run: channels chosen, normalisation, scale, paster settings, blocks."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ConfigError, InputError
from ..predict.api import load_model
from ..predict.autoscale import estimate_scale, scale_factor
from ..transforms import scaled_shape
from .grid import Block, tile_blocks

__all__ = ["Plan", "make_plan", "selected_names", "settings_key", "plan_diameter"]


def selected_names(
    seg: Any, n: int, channels: Sequence[int | str] | None, channel_names: Sequence[str] | None
) -> list[str] | None:
    """Names of the channels ``seg.select_channels`` picks from an image of ``n`` channels, or None."""
    if not channel_names or len(channel_names) != n:
        return [str(c) for c in channels] if channels else None
    try:  # the same choice on an image whose pixels are the channel indices
        index = seg.select_channels(np.arange(n).reshape(n, 1, 1), channels, channel_names)[:, 0, 0]
    except InputError:
        return None
    return [str(channel_names[int(i)]) for i in index]


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of a run's settings: the name of its scratch folder's settings file."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_diameter(seg: Any, img: Any, bounds: np.ndarray, diameter: float | str | None, model: str) -> float:
    """The cell diameter used: given, the model's training diameter (``"train"``), or estimated on a central window."""
    if diameter == "train":
        if seg.train_diameter is None:
            raise ConfigError(f"model {model} records no training diameter; give the diameter in px")
        return seg.train_diameter
    if diameter is None:
        found = estimate_scale(seg, img, bounds).diameter  # one pass with a size model, else the ladder
        return float(found) if math.isfinite(found) else float(seg.train_diameter or seg.spec.target_diameter)
    return diameter


@dataclass
class Plan:
    """What every block of one image shares: the channels chosen, normalisation, scale, paster settings, blocks."""

    model: str
    img: Any
    shape: tuple[int, int]
    bounds: np.ndarray
    diameter: float
    estimated: bool
    factor: float
    halo: int
    block_size: int
    settings: dict[str, Any]
    blocks: list[Block]
    channel_names: list[str] | None  # of the channels chosen, for the stored image

    def record(self) -> dict[str, Any]:
        """What the scratch folder's results depend on (a rerun with another record starts again)."""
        return dict(
            model=str(self.model),
            shape=list(self.shape),
            bounds=self.bounds.ravel().tolist(),
            factor=self.factor,
            block_size=self.block_size,
            halo=self.halo,
            settings=self.settings,
            version=__version__,
        )

    def meta(self, cells: int, high_score_fraction: float, clock: list[float]) -> dict[str, Any]:
        """The table's meta: how the labels were made, and the wall seconds of the passes."""
        return {
            "model": str(self.model),
            "diameter_used": float(self.diameter),
            "diameter_estimated": bool(self.estimated),
            "scale_factor": self.factor,
            "image_shape": list(self.shape),
            "block_size": self.block_size,
            "halo": self.halo,
            "blocks": len(self.blocks),
            **{k: v for k, v in self.settings.items() if k != "min_area"},
            "cells": cells,
            "high_score_fraction": high_score_fraction,
            # wall seconds of pass 1 (segment) and passes 2-3 (resolve, write), on the cluster
            "seconds": {"segment": round(clock[1] - clock[0], 1), "stitch": round(clock[2] - clock[1], 1)},
        }


def make_plan(
    image: Any,
    model: str,
    device: str,
    *,
    diameter: float | str | None,
    channels: Sequence[int | str] | None,
    channel_names: Sequence[str] | None,
    block_size: int,
    tile_size: int,
    augment: bool,
    overlaps: str,
    threshold: float,
    min_area: int,
    min_fragment_fraction: float,
) -> Plan:
    """Load the model here too (the channel choice, percentiles, scale and halo need it) and plan the blocks."""
    seg = load_model(model, device=device)
    img = seg.select_channels(image, channels, channel_names)
    names = selected_names(seg, int(image.shape[0]) if image.ndim == 3 else 1, channels, channel_names)
    shape = tuple(int(n) for n in img.shape[-2:])
    bounds = seg.percentiles(img)
    estimated = diameter is None
    diameter = plan_diameter(seg, img, bounds, diameter, model)
    factor = scale_factor(seg.spec, float(diameter))
    overlap = seg.default_overlap()
    model_shape = scaled_shape(shape, factor)
    area_scale = (shape[0] / model_shape[0]) * (shape[1] / model_shape[1])
    rules = dict(
        threshold=threshold,
        min_area=max(1, int(round(min_area * area_scale))),
        min_fragment_fraction=min_fragment_fraction,
        overlaps=overlaps,
    )
    settings = dict(tile_size=tile_size, overlap=overlap, augment=augment, **rules)
    blocks = tile_blocks(shape, factor, tile_size, overlap, seg.pad_multiple, block_size)
    halo = int(math.ceil(overlap / factor))
    return Plan(model, img, shape, bounds, diameter, estimated, factor, halo, block_size, settings, blocks, names)

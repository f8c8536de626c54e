"""Aitslab U2OS fields (Lund): Hoechst nucleus + whole-cell channel, hand-drawn cells and nuclei.

Two folders under ``aitslab_u2os/``: ``cells/`` (26 two-channel fields with
cell and nucleus labels) and ``nuclei/`` (50 nucleus-channel fields with
nucleus labels; 26 of them are the ``cells/`` fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, InputError
from ...io import read_image, read_labels
from ..dataset import Sample

AITSLAB_CHANNELS = ("nucleus", "cell")
AITSLAB_ALIASES = {"dna": "nucleus", "nuclei": "nucleus", "hoechst": "nucleus", "actin": "cell", "cytoplasm": "cell"}
_LABEL_DIRS = {"cells": "labels", "nuclei": "labels_nuclei"}


@dataclass
class AitslabLoader:
    """One field of ``cells/`` (``kind="cells"``) or ``nuclei/`` (``kind="nuclei"``).

    ``target`` picks the labels of a ``cells/`` field: whole cells or nuclei.
    """

    root: Path
    kind: str
    channels: list[int]
    target: str = "cells"

    def __call__(self, name: str) -> Sample:
        folder = self.root / self.kind
        path = folder / "images" / f"{name}.tif"
        image = read_image(path)
        if self.kind == "cells":
            image = image[self.channels]
            names = [AITSLAB_CHANNELS[c] for c in self.channels]
            label_path = folder / _LABEL_DIRS[self.target] / f"{name}.tif"
        else:
            names = ["nucleus"]
            label_path = folder / "labels" / f"{name}.tif"
        labels = read_labels(label_path) if label_path.is_file() else None
        meta = {
            "path": str(path),
            "label_path": str(label_path),
            "channel_names": names,
            "pixel_size": None,
            "group": "aitslab",
            "target": self.target if self.kind == "cells" else "nuclei",
        }
        return Sample(image=image, labels=labels, name=name, meta=meta)


def aitslab_names(root: Path, kind: str) -> list[str]:
    """Field names of ``cells/`` or ``nuclei/``."""
    if kind not in ("cells", "nuclei"):
        raise ConfigError(f"aitslab: kind must be 'cells' or 'nuclei', got {kind!r}")
    folder = Path(root) / kind / "images"
    if not folder.is_dir():
        raise InputError("Aitslab image folder not found", path=folder)
    return sorted(p.name[: -len(".tif")] for p in folder.glob("*.tif"))

"""Koyuncu et al. Hoechst nuclei (HepG2 / Huh7 JPEGs with integer text label matrices)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...io import read_image, read_labels
from ..dataset import Sample

KOYUNCU_CHANNELS = ("red", "green", "blue")


@dataclass
class KoyuncuLoader:
    """One Koyuncu image (JPEG, chosen colour channels) and its integer label matrix."""

    root: Path
    channels: list[int]

    def __call__(self, name: str) -> Sample:
        d = self.root / "dataset"
        path = d / "images" / f"{name}.jpg"
        image = read_image(path)[self.channels]
        ann = d / "annotations" / f"{name}.gz"
        labels = read_labels(ann) if ann.is_file() else None
        cell_line = "HepG2" if int(name) <= 25 else "Huh7"
        meta = {
            "path": str(path),
            "label_path": str(ann),
            "channel_names": [KOYUNCU_CHANNELS[c] for c in self.channels],
            "group": cell_line,
            "pixel_size": None,
        }
        return Sample(image=image, labels=labels, name=name, meta=meta)


def koyuncu_names(root: Path) -> list[str]:
    """Image numbers of the data set, in numeric order."""
    folder = root / "dataset" / "images"
    if not folder.is_dir():
        raise InputError("Koyuncu image folder not found", path=folder)
    return sorted((p.stem for p in folder.glob("*.jpg")), key=int)

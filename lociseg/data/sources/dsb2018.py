"""DSB2018 (BBBC038) folders of per-nucleus mask PNGs and the run-length solution CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import masks_to_labels, read_image, read_rle_csv
from ..dataset import Sample

DSB_CHANNELS = ("red", "green", "blue")


@dataclass
class DSBLoader:
    """DSB2018 folders ``<ImageId>/images/<ImageId>.png`` + ``masks/*.png``.

    With ``channels=None`` images become one grey channel: the red channel
    when the colour channels are equal (fluorescence), else their mean
    (brightfield / H&E), as uint8.
    """

    folder: Path
    channels: list[int] | None = None

    def __call__(self, image_id: str) -> Sample:
        d = self.folder / image_id
        path = d / "images" / f"{image_id}.png"
        rgb = read_image(path)
        if rgb.shape[0] == 1:
            rgb = np.repeat(rgb, 3, axis=0)
        colour = not (np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[0], rgb[2]))
        if self.channels is None:
            image = rgb.mean(axis=0, keepdims=True).round().astype(rgb.dtype) if colour else rgb[:1]
            names = ["grey"]
        else:
            image, names = rgb[self.channels], [DSB_CHANNELS[c] for c in self.channels]
        masks = d / "masks"
        labels = masks_to_labels(masks, shape=image.shape[1:]) if masks.is_dir() else None
        meta = {
            "path": str(path),
            "channel_names": names,
            "colour": colour,
            "pixel_size": None,
            "label_path": str(masks),
        }
        return Sample(image=image, labels=labels, name=image_id, meta=meta)


def dsb_names(folder: Path) -> list[str]:
    """Image ids (subfolders with ``images/``) of a DSB2018 folder."""
    if not folder.is_dir():
        raise InputError("DSB2018 folder not found", path=folder)
    return sorted(p.name for p in folder.iterdir() if (p / "images").is_dir())


def dsb_rle_labels(csv_path: Path) -> dict[str, np.ndarray]:
    """Label images of every DSB2018 image id from a run-length CSV (``stage1_solution.csv``)."""
    return read_rle_csv(csv_path)

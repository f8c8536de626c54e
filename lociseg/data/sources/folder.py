"""User folders: images/ + masks/, Cellpose-style pairs, or images alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...io import IMAGE_SUFFIXES, read_image, read_image_metadata, read_labels
from ...io.files import MASK_SUFFIXES, image_stem
from ..dataset import Sample

_MASK_DIRS = ("masks", "labels", "mask", "label")
_MASK_SUFFIXES = (*MASK_SUFFIXES, "")  # "": a mask named exactly like its image


def _is_image(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES) and not p.name.startswith(".")


def _stem(p: Path) -> str:
    return image_stem(p, suffixes=())


@dataclass
class FolderLoader:
    """Images (and labels, weak annotations) found by :func:`scan_folder`."""

    images: dict[str, str]
    labels: dict[str, str]
    channels: list[int | str] | None = None
    channel_names: list[str] | None = None
    annotations: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __call__(self, name: str) -> Sample:
        path = Path(self.images[name])
        image = read_image(path, channels=self.channels, channel_names=self.channel_names)
        label_path = self.labels.get(name)
        labels = read_labels(label_path) if label_path else None
        if labels is not None and labels.shape != image.shape[1:]:
            raise InputError(
                f"label shape {labels.shape} differs from image shape {image.shape[1:]} ({path.name})", path=label_path
            )
        points = foreground = None
        if self.annotations:
            ann = Path(self.annotations)
            pts, fg = ann / f"{name}.points.csv", ann / f"{name}.foreground.tif"
            if pts.is_file():
                try:
                    points = np.loadtxt(pts, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2).reshape(-1, 2)
                except ValueError as exc:
                    raise InputError(f"bad points CSV ({exc})", path=pts) from None
            if fg.is_file():
                foreground = read_image(fg)[0] > 0
        names = self.channel_names or _channel_names_of(path, image.shape[0], self.channels)
        meta = {"path": str(path), "label_path": label_path, "channel_names": names, **self.extra}
        return Sample(image=image, labels=labels, points=points, foreground=foreground, name=name, meta=meta)


def _channel_names_of(path: Path, n: int, channels: Sequence[int | str] | None) -> list[str]:
    stored = read_image_metadata(path).get("channel_names")
    if stored and channels is not None:
        lower = [s.lower() for s in stored]
        try:
            return [stored[lower.index(c.lower())] if isinstance(c, str) else stored[c] for c in channels]
        except (ValueError, IndexError):
            pass
    if stored and len(stored) == n:
        return list(stored)
    return [f"c{i}" for i in range(n)]


def scan_folder(folder: Path) -> tuple[dict[str, str], dict[str, str], str | None, str]:
    """Find images, labels and weak annotations in a user folder.

    Layouts, tried in this order:

    * ``images/`` with ``masks/`` (or ``labels/``): matched by file stem (the
      mask may add ``_masks``/``_mask``/``_labels``); images without a mask
      are unlabelled; ``annotations/<stem>.points.csv`` and
      ``<stem>.foreground.tif`` are read when present.
    * Cellpose style: ``<stem>_img.<ext>`` with ``<stem>_masks.<ext>``.
    * Images only: every image file in the folder (unlabelled).

    Returns
    -------
    images, labels : dict of name to path; annotations folder or None; layout name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("data folder not found", path=folder)
    images: dict[str, str] = {}
    labels: dict[str, str] = {}
    img_dir = folder / "images"
    if img_dir.is_dir():
        mask_dir = next((folder / d for d in _MASK_DIRS if (folder / d).is_dir()), None)
        masks = (
            {_stem(p): p for p in sorted(mask_dir.iterdir()) if _is_image(p) or p.name.endswith((".gz", ".txt"))}
            if mask_dir
            else {}
        )
        for p in sorted(img_dir.iterdir()):
            if not _is_image(p):
                continue
            stem = _stem(p)
            images[stem] = str(p)
            for suffix in _MASK_SUFFIXES:
                if stem + suffix in masks:
                    labels[stem] = str(masks[stem + suffix])
                    break
        ann = folder / "annotations"
        return images, labels, str(ann) if ann.is_dir() else None, "images+masks" if mask_dir else "images"
    files = sorted(p for p in folder.iterdir() if _is_image(p))
    cellpose = {_stem(p)[: -len("_img")]: p for p in files if _stem(p).endswith("_img")}
    if cellpose:
        masks = {_stem(p)[: -len("_masks")]: p for p in files if _stem(p).endswith("_masks")}
        for stem, p in cellpose.items():
            images[stem] = str(p)
            if stem in masks:
                labels[stem] = str(masks[stem])
        return images, labels, None, "cellpose"
    skip = (*MASK_SUFFIXES, "_flows")
    for p in files:
        if not _stem(p).endswith(skip):
            images[_stem(p)] = str(p)
    return images, labels, None, "images"

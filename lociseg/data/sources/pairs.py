"""Shared loader for sources stored as ``images/<name>.<ext>`` beside ``labels/<name>.tif``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...io import read_image, read_labels
from ..dataset import Sample


@dataclass
class PairLoader:
    """One field of a source laid out as image file + instance-label TIFF of the same stem.

    Parameters
    ----------
    root : Path
        The source's folder under the data root.
    channels : list of int
        Planes of the image to keep, in order.
    channel_names : tuple of str
        Names of all planes of the stored image.
    images, labels : str
        Sub-folders of ``root`` holding the images and the label TIFFs.
    suffix : str
        Image file suffix.
    group : callable or None
        ``name -> group`` (cell line, position), recorded as ``meta["group"]``.
    meta : dict
        Extra entries for every sample's ``meta`` (e.g. ``partial_labels``).
    """

    root: Path
    channels: list[int]
    channel_names: tuple[str, ...]
    images: str = "images"
    labels: str = "labels"
    suffix: str = ".tif"
    group: object = None
    meta: dict = field(default_factory=dict)

    def __call__(self, name: str) -> Sample:
        path = self.root / self.images / f"{name}{self.suffix}"
        image = read_image(path)[self.channels]
        label_path = self.root / self.labels / f"{name}.tif"
        labels = read_labels(label_path) if label_path.is_file() else None
        meta = {
            "path": str(path),
            "label_path": str(label_path),
            "channel_names": [self.channel_names[c] for c in self.channels],
            "pixel_size": None,
            "group": self.group(name) if callable(self.group) else self.root.name,
            **self.meta,
        }
        return Sample(image=image, labels=labels, name=name, meta=meta)


def pair_names(folder: Path, suffix: str, what: str) -> list[str]:
    """Stems of the ``*suffix`` files in ``folder``, sorted; a clear error when it is missing."""
    if not folder.is_dir():
        raise InputError(f"{what} image folder not found", path=folder)
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))

"""The sample record and the lazy dataset every loader returns."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Sample", "SegmentationDataset", "default_data_root"]


@dataclass
class Sample:
    """One image with whatever annotation it has.

    Attributes
    ----------
    image : (C, H, W) ndarray
        Raw pixels in the file's dtype (normalise with
        :func:`lociseg.transforms.normalize_percentile`).
    labels : (H, W) int32 ndarray or None
        Instance labels, 0 = background; None when unlabelled.
    points : (N, 2) float32 ndarray or None
        Cell locations (y, x), e.g. machine-made point annotations.
    foreground : (H, W) bool ndarray or None
        Foreground (cell) mask, e.g. a machine-made one.
    name : str
        Unique within its dataset (a well index, an ImageId, a file stem).
    meta : dict
        ``path``, ``channel_names``, ``group``, ``pixel_size`` and other
        source-specific details.
    cells : (H, W) int32 ndarray or None
        Machine-made cell label image (``lociseg annotate``): pseudo-labels,
        kept apart from ``labels`` so they are never scored as ground truth.
    corrected : (H, W) int32 ndarray or None
        Cells a person drew or corrected (0 elsewhere): weak training takes
        them as full labels and the rest of the image stays weak. Kept apart
        from ``labels`` so weak runs never read ground truth by accident.
    reviewed : (H, W) bool ndarray or None
        Where ``corrected`` is authoritative: its cells and the pixels a
        person erased to background; None means ``corrected > 0``.
    """

    image: np.ndarray
    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    foreground: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)
    cells: np.ndarray | None = None
    corrected: np.ndarray | None = None
    reviewed: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise InputError(
                f"sample {self.name!r}: image must be (C, H, W), got shape {self.image.shape}",
                path=self.meta.get("path"),
            )
        hw = self.image.shape[1:]
        for attr in ("labels", "foreground", "cells", "corrected", "reviewed"):
            value = getattr(self, attr)
            if value is not None and value.shape != hw:
                where = self.meta.get("label_path") or self.meta.get("path")
                raise InputError(f"{attr} shape {value.shape} differs from image shape {hw}", path=where)
        if self.points is not None:
            self.points = np.asarray(self.points, np.float32).reshape(-1, 2)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return tuple(self.image.shape[1:])  # type: ignore[return-value]


class SegmentationDataset(Sequence[Sample]):
    """A lazily loaded, indexable collection of :class:`Sample`.

    Parameters
    ----------
    name : str
        Data set name (e.g. ``"bbbc018@train"``).
    names : sequence of str
        Sample names, unique.
    loader : callable
        ``loader(name) -> Sample``; called on every access (nothing is
        cached, so the dataset pickles cheaply into data-loader workers).
    channel_names : sequence of str
        Names of the image channels, in order.
    info : dict, optional
        Extra description (root, split, target, ...).
    """

    def __init__(
        self,
        name: str,
        names: Sequence[str],
        loader: Callable[[str], Sample],
        channel_names: Sequence[str] = (),
        info: dict | None = None,
    ) -> None:
        names = list(names)
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: sample names are not unique")
        self.name = name
        self._names = names
        self._loader = loader
        self.channel_names = tuple(channel_names)
        self.info = dict(info or {})

    @property
    def names(self) -> list[str]:
        """Sample names in order."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index: int | str) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("use subset(names) to take part of a dataset")
        if isinstance(index, str):
            if index not in self._names:
                raise KeyError(f"{self.name}: no sample named {index!r}")
            key = index
        else:
            key = self._names[index]
        return self._loader(key)

    def __iter__(self):
        for key in self._names:
            yield self._loader(key)

    def subset(self, names: Iterable[str], name: str | None = None) -> SegmentationDataset:
        """A dataset with only the given samples, in the given order."""
        names = list(names)
        missing = sorted(set(names) - set(self._names))
        if missing:
            raise InputError(f"{self.name}: unknown sample(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        return SegmentationDataset(name or self.name, names, self._loader, self.channel_names, self.info)

    def __repr__(self) -> str:
        head = ", ".join(self._names[:3]) + (", ..." if len(self._names) > 3 else "")
        return f"SegmentationDataset({self.name!r}, {len(self)} samples [{head}], channels={list(self.channel_names)})"


def default_data_root() -> Path:
    """Where the shared data sets live.

    ``$LOCISEG_DATA`` when set, else the first existing of ``./shared/data``,
    ``../shared/data`` (relative to the working directory) and
    ``shared/data`` beside the repository.
    """
    env = os.environ.get("LOCISEG_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    candidates = [
        Path.cwd() / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
        repo.parent / "shared" / "data",
    ]
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise InputError(
        "shared data folder not found (looked in ./shared/data, ../shared/data and beside the "
        "repository); set LOCISEG_DATA or pass root="
    )

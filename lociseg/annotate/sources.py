"""The images a batch annotation reads: files, folders, globs, a labelled data set, or in-memory arrays."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batch import unique_names
from ..data import DATASETS, load_dataset, parse_spec
from ..errors import ConfigError, InputError
from ..io import read_image
from ..io.files import expand_inputs, image_stem

__all__ = ["ImageSource", "SourceImage", "image_sources"]

#: What :func:`image_sources` takes: a file, folder, glob or data set spec, or a (name, (C, H, W) array) pair.
Input = str | os.PathLike | tuple[str, np.ndarray]


@dataclass
class SourceImage:
    """One image as read: its (nucleus, cytoplasm) channels and, from a labelled data set, its labels.

    Attributes
    ----------
    image : (2, H, W) ndarray
        The nuclear and the cytoplasm channel, in that order.
    gt_nuclei, gt_cells : (H, W) int ndarray or None
        Ground truth to score the annotation against (``gt``).
    labels : (H, W) int ndarray or None
        The data set's labels (``gt`` or ``from_labels``).
    """

    image: np.ndarray
    gt_nuclei: np.ndarray | None = None
    gt_cells: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass
class ImageSource:
    """An image to annotate: its output name, where it comes from, and how to read it (lazily).

    Attributes
    ----------
    name : str
        Output name (clashes resolved: :func:`lociseg.batch.unique_names`).
    origin : str
        The file, data set item or ``"(array)"``.
    load : callable
        ``load() -> SourceImage``; reading errors are raised here, per image.
    """

    name: str
    origin: str
    load: Callable[[], SourceImage]


def image_sources(
    inputs: Sequence[Input],
    channels: Sequence[int | str],
    *,
    gt: bool = False,
    from_labels: bool = False,
) -> tuple[list[ImageSource], list[str]]:
    """The images of ``inputs`` to annotate, and a note for each input whose output name was changed.

    Parameters
    ----------
    inputs : sequence
        Image files, folders (their image files), glob patterns, or one data
        set spec (``bbbc018@train``, a data set folder); or ``(name, (C, H, W)
        array)`` pairs, whose ``channels`` are then indices.
    channels : (nucleus, cytoplasm)
        The two channels, by name or index.
    gt, from_labels : bool
        The data set's labels are read too (to score the annotation, or to
        derive it from them): a labelled data set spec only.

    Raises
    ------
    ConfigError
        ``gt``/``from_labels`` without a labelled data set.
    InputError
        A folder or glob without image files.
    """
    chans = list(channels)
    if len(inputs) == 1 and isinstance(inputs[0], str) and _is_dataset(inputs[0]):
        return _dataset_sources(inputs[0], chans, gt, from_labels), []
    if gt or from_labels:
        raise ConfigError("--gt and --from-labels need a labelled data set spec (e.g. bbbc018@train), not image files")
    arrays = [item for item in inputs if isinstance(item, tuple)]
    if arrays:
        if len(arrays) != len(inputs):
            raise ConfigError("give either image files or (name, array) pairs, not both")
        items = [(str(name), "(array)", _array_loader(name, image, chans)) for name, image in arrays]
    else:
        paths = expand_inputs([str(item) for item in inputs])
        items = [(image_stem(p, suffixes=()), str(p), _file_loader(p, chans)) for p in paths]
    names, notes = unique_names([n for n, _, _ in items], [o for _, o, _ in items])
    return [ImageSource(name, origin, load) for name, (_, origin, load) in zip(names, items, strict=True)], notes


def _is_dataset(item: str) -> bool:
    p = Path(item)
    folder = p.is_dir() and ((p / "images").is_dir() or any(p.glob("*_img.*")))
    return folder or parse_spec(item)[0].lower() in DATASETS


def _dataset_sources(spec: str, chans: list, gt: bool, from_labels: bool) -> list[ImageSource]:
    ds = load_dataset(spec, channels=chans)
    base, _, split = parse_spec(spec)
    nuclei_ds = (
        load_dataset("bbbc018:nuclei", split=split, channels=chans) if gt and base.lower() == "bbbc018" else None
    )

    def loader(name: str) -> Callable[[], SourceImage]:
        def load() -> SourceImage:
            s = ds[name]
            if (gt or from_labels) and s.labels is None:
                raise ConfigError(f"{ds.name} has no labels for image {name!r} (--gt/--from-labels)")
            nuclei = (nuclei_ds[name].labels if nuclei_ds is not None else s.labels) if gt else None
            return SourceImage(s.image, nuclei, s.labels if gt else None, s.labels)

        return load

    return [ImageSource(name, f"{spec}:{name}", loader(name)) for name in ds.names]


def _file_loader(path: Path, chans: list) -> Callable[[], SourceImage]:
    return lambda: SourceImage(read_image(path, channels=chans))


def _array_loader(name: str, image: np.ndarray, chans: list) -> Callable[[], SourceImage]:
    def load() -> SourceImage:
        arr = np.asarray(image)
        if arr.ndim != 3 or not all(isinstance(c, int) and -arr.shape[0] <= c < arr.shape[0] for c in chans):
            raise InputError(f"{name}: needs a (C, H, W) array with channels {chans}, got shape {arr.shape}")
        return SourceImage(arr[chans])

    return load

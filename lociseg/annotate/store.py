"""On-disk machine annotations: ``<name>.points.csv`` + ``<name>.foreground.tif`` (+ ``<name>.cells.tif``) per image."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data import Sample
from ..errors import InputError
from ..io.files import atomic_write

__all__ = [
    "annotation_files",
    "read_annotation_meta",
    "update_annotation_meta",
    "write_annotation",
    "read_annotation",
    "read_cells",
    "has_annotation",
    "with_annotations",
    "AnnotatedDataset",
]


def _safe(name: str) -> str:
    # Sample names may be relative paths (folder data sets); keep files flat.
    return name.replace(os.sep, "__").replace("/", "__")


def write_annotation(
    directory: str | os.PathLike,
    name: str,
    points: np.ndarray,
    foreground: np.ndarray,
    meta: dict | None = None,
    *,
    candidates: np.ndarray | None = None,
    cells: np.ndarray | None = None,
    overwrite: bool = True,
) -> Path:
    """Write one image's weak annotation, each file atomically.

    Files: ``<name>.points.csv`` (header ``y,x``), ``<name>.foreground.tif``
    (uint8 0/1), optionally ``<name>.candidates.npz`` (the (K, H, W) bool
    candidates, for the napari widget), ``<name>.cells.tif`` (the machine-made
    cell label image, uint16 or uint32) and ``<name>.meta.json``. With
    ``overwrite=False`` an existing file is an :class:`InputError` (the
    napari editor rewrites annotations in place, so True is the default).

    Returns the points file path.
    """
    import tifffile

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = _safe(name)
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    p = d / f"{stem}.points.csv"
    atomic_write(
        p, lambda tmp: np.savetxt(tmp, pts, fmt="%.2f", delimiter=",", header="y,x", comments=""), overwrite=overwrite
    )
    atomic_write(
        d / f"{stem}.foreground.tif",
        lambda tmp: tifffile.imwrite(tmp, np.asarray(foreground, bool).astype(np.uint8), compression="zlib"),
        overwrite=overwrite,
    )
    if candidates is not None:
        atomic_write(
            d / f"{stem}.candidates.npz",
            lambda tmp: np.savez_compressed(
                tmp,
                candidates=np.packbits(np.asarray(candidates, bool), axis=-1),
                shape=np.asarray(np.shape(candidates)),
            ),
            overwrite=overwrite,
        )
    cells_path = d / f"{stem}.cells.tif"
    if cells is not None:
        cells = np.asarray(cells)
        dtype = np.uint16 if cells.max(initial=0) < 2**16 else np.uint32
        atomic_write(
            cells_path, lambda tmp: tifffile.imwrite(tmp, cells.astype(dtype), compression="zlib"), overwrite=overwrite
        )
    elif cells_path.is_file():
        cells_path.unlink()  # a stale split of an earlier annotation would no longer match these points
    if meta is not None:
        atomic_write(d / f"{stem}.meta.json", json.dumps(meta, indent=1, default=str), overwrite=overwrite)
    return p


#: The endings of one image's annotation files (:func:`write_annotation`).
_ENDINGS = (".points.csv", ".foreground.tif", ".candidates.npz", ".cells.tif", ".meta.json")


def annotation_files(directory: str | os.PathLike, name: str) -> list[Path]:
    """The annotation files of image ``name`` that ``directory`` holds."""
    return [p for e in _ENDINGS if (p := Path(directory) / f"{_safe(name)}{e}").is_file()]


def read_annotation_meta(directory: str | os.PathLike, name: str) -> dict | None:
    """The ``meta.json`` of image ``name``'s annotation, or None when there is none.

    Raises
    ------
    InputError
        The file is not a JSON object.
    """
    path = Path(directory) / f"{_safe(name)}.meta.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"unreadable ({exc})", path=path) from None
    if not isinstance(meta, dict):
        raise InputError("is not an annotation record (a JSON object)", path=path)
    return meta


def update_annotation_meta(directory: str | os.PathLike, name: str, extra: dict) -> Path:
    """Add ``extra`` to the ``meta.json`` of image ``name``'s annotation (written atomically); returns its path."""
    path = Path(directory) / f"{_safe(name)}.meta.json"
    meta = {**(read_annotation_meta(directory, name) or {}), **extra}
    return atomic_write(path, json.dumps(meta, indent=1, default=str), overwrite=True)


def read_candidates(directory: str | os.PathLike, name: str) -> np.ndarray:
    """The (K, H, W) bool candidates written with :func:`write_annotation`."""
    path = Path(directory) / f"{_safe(name)}.candidates.npz"
    if not path.is_file():
        raise InputError("no foreground candidates stored for this image", path=path)
    with np.load(path) as z:
        shape = tuple(z["shape"])
        return np.unpackbits(z["candidates"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)


def has_annotation(directory: str | os.PathLike, name: str) -> bool:
    """Whether ``directory`` holds the points and foreground of image ``name``."""
    d, stem = Path(directory), _safe(name)
    return (d / f"{stem}.points.csv").is_file() and (d / f"{stem}.foreground.tif").is_file()


def read_annotation(directory: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(points (N, 2) float32 (y, x), foreground (H, W) bool)`` of one image.

    Raises
    ------
    InputError
        A file is missing or malformed (the message names it).
    """
    import tifffile

    d, stem = Path(directory), _safe(name)
    pp, fp = d / f"{stem}.points.csv", d / f"{stem}.foreground.tif"
    for path in (pp, fp):
        if not path.is_file():
            raise InputError(f"no annotation for image {name!r}", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an image without cells has an empty points file
            pts = np.loadtxt(pp, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2).reshape(-1, 2)
    except ValueError as exc:
        raise InputError(
            f"malformed points file ({exc}); expected a 'y,x' header and two numbers a line", path=pp
        ) from None
    fg = tifffile.imread(fp)
    if fg.ndim != 2:
        raise InputError(f"foreground must be a 2-D image, got shape {fg.shape}", path=fp)
    return pts, fg > 0


def read_cells(directory: str | os.PathLike, name: str) -> np.ndarray | None:
    """The machine-made cell labels (int32) of one image, or None when not stored
    (folders written by ``lociseg annotate --from-labels`` or before cells existed).
    """
    import tifffile

    path = Path(directory) / f"{_safe(name)}.cells.tif"
    if not path.is_file():
        return None
    cells = tifffile.imread(path)
    if cells.ndim != 2:
        raise InputError(f"cell labels must be a 2-D image, got shape {cells.shape}", path=path)
    return cells.astype(np.int32)


class AnnotatedDataset(Sequence[Sample]):
    """A dataset whose samples carry machine annotations (see :func:`with_annotations`)."""

    def __init__(self, dataset, directory: str | os.PathLike, strict: bool = True) -> None:
        self.dataset = dataset
        self.directory = Path(directory)
        names = list(getattr(dataset, "names", [s.name for s in dataset]))
        if strict:
            missing = [n for n in names if not has_annotation(self.directory, n)]
            if missing:
                raise InputError(
                    f"{len(missing)} image(s) have no annotation, e.g. {missing[:3]}; run 'lociseg annotate' first",
                    path=self.directory,
                )
        else:
            names = [n for n in names if has_annotation(self.directory, n)]
        self._names = names
        self.name = getattr(dataset, "name", "dataset")
        self.channel_names = getattr(dataset, "channel_names", ())

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index):  # type: ignore[override]
        name = index if isinstance(index, str) else self._names[index]
        sample = self.dataset[name]
        points, fg = read_annotation(self.directory, name)
        if fg.shape != sample.shape:
            raise InputError(
                f"foreground shape {fg.shape} differs from image shape {sample.shape}",
                path=self.directory / f"{_safe(name)}.foreground.tif",
            )
        cells = read_cells(self.directory, name)
        if cells is not None and cells.shape != sample.shape:
            raise InputError(
                f"cell labels shape {cells.shape} differs from image shape {sample.shape}",
                path=self.directory / f"{_safe(name)}.cells.tif",
            )
        return replace(sample, points=points, foreground=fg, cells=cells)


def with_annotations(dataset, directory: str | os.PathLike, *, strict: bool = True) -> AnnotatedDataset:
    """The samples of ``dataset`` with ``points``/``foreground`` read from ``directory``.

    Lazy: annotations are read on access; machine-made cells, where stored,
    go to ``Sample.cells``. GT ``labels`` are kept (evaluation
    may use them; weak training ignores them when told to).

    Parameters
    ----------
    dataset : SegmentationDataset or sequence of Sample
        Sample names are matched to annotation files (BBBC018: well indices).
    directory : path
        Output folder of ``lociseg annotate``.
    strict : bool
        Raise when an image has no annotation (default); otherwise skip it.
    """
    return AnnotatedDataset(dataset, directory, strict)

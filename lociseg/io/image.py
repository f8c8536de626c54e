"""Reading microscopy images as (C, H, W) arrays.

Every reader returns the channel axis first and keeps the native dtype, so
callers choose how to scale. Problems a user can fix (missing, truncated or
oddly shaped files, unknown channel names) raise :class:`InputError` naming
the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .formats import (
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    check_size,
    dib_header,
    read_dib,
    read_npy,
    read_pil,
    read_tiff,
    tiff_series,
)
from .lazy import LazyImage, NgffImage, PathLike, is_ngff

#: Largest image plane (pixels) :func:`read_image` decodes unless given a higher ``max_pixels``.
MAX_PIXELS = 2**30

__all__ = [
    "read_image",
    "read_image_metadata",
    "validate_image",
    "IMAGE_SUFFIXES",
    "LazyImage",
    "MAX_PIXELS",
]


def path_problem(path: PathLike) -> str:
    """Why ``path`` cannot be read as a file, in a few words (for an :class:`InputError`)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "broken symbolic link or link loop"
    return "no such file" if not path.exists() else "not a file"


def _suffix(path: Path) -> str:
    return path.suffix.lower()


# ----------------------------------------------------------------------- public


def _select_channels(
    image: np.ndarray,
    channels: Sequence[int | str] | int | str | None,
    names: Sequence[str] | None,
    path: Path | None,
) -> np.ndarray:
    if channels is None:
        return image
    return image[_channel_index(image.shape[0], channels, names, path)]


def _channel_index(
    n: int,
    channels: Sequence[int | str] | int | str,
    names: Sequence[str] | None,
    path: Path | None,
) -> list[int]:
    if isinstance(channels, (int, np.integer, str)):
        channels = [channels]
    index = []
    lower = [n.lower() for n in names] if names else None
    for c in channels:
        if isinstance(c, str):
            if lower is None:
                raise InputError(f"channel {c!r} given by name but the image has no channel names", path=path)
            if c.lower() not in lower:
                raise InputError(f"no channel named {c!r}; channels are {list(names or [])}", path=path)
            index.append(lower.index(c.lower()))
        else:
            c = int(c)
            if not -n <= c < n:
                raise InputError(f"channel index {c} out of range for {n} channel(s)", path=path)
            index.append(c)
    return index


def read_image(
    path: PathLike,
    *,
    channels: Sequence[int | str] | int | str | None = None,
    channel_names: Sequence[str] | None = None,
    z: int | None = None,
    t: int | None = None,
    allow_nonfinite: bool = False,
    max_pixels: int | None = MAX_PIXELS,
    lazy_above: int | None = None,
) -> np.ndarray:
    """Read a 2-D (multi-channel) image as a (C, H, W) array of its native dtype.

    Parameters
    ----------
    path : str or path-like
        TIFF / OME-TIFF (tifffile), PNG / JPEG / BMP (Pillow), ``.npy`` or a
        Cellomics ``.DIB`` (BBBC018) file.
    channels : sequence of int or str, optional
        Channels to keep, in this order, by index or by name. Names match
        (case-insensitively) ``channel_names`` when given, else the channel
        names stored in OME or ImageJ metadata.
    channel_names : sequence of str, optional
        Names of the file's channels, for files without metadata.
    z, t : int, optional
        Plane to take from a Z-stack or time series. Singleton Z/T axes are
        squeezed; stacks with more planes need an explicit choice.
    allow_nonfinite : bool
        Accept NaN / infinite pixels in float images (else an error).
    max_pixels : int or None, optional
        Largest plane (height x width) read; the size the file declares is
        checked before any pixel is decoded, so a small compressed file that
        would decompress to tens of GB is refused. None: no limit.
    lazy_above : int, optional
        TIFF images whose plane has more pixels than this are not read but
        returned as a :class:`LazyImage` that reads windows on demand (NaN
        checks are then left to the reader of the pixels).

    Returns
    -------
    image : (C, H, W) ndarray or LazyImage
        Grey images have C = 1; RGB files C = 3 (alpha is dropped).

    Raises
    ------
    InputError
        The file is missing, unreadable, truncated, not 2-D, empty, larger
        than ``max_pixels``, has NaN/inf pixels, or a channel does not exist.
    """
    path = Path(path)
    if is_ngff(path):
        return _read_ngff(path, channels, channel_names, z, t, allow_nonfinite, max_pixels, lazy_above)
    if not path.is_file():
        raise InputError(path_problem(path), path=path)
    suffix = _suffix(path)
    names: Sequence[str] | None = channel_names
    if suffix in TIFF_SUFFIXES:
        image, stored = read_tiff(path, z=z, t=t, max_pixels=max_pixels, lazy_above=lazy_above)
        names = stored if names is None else names
    elif suffix == ".dib":
        image = read_dib(path)
    elif suffix == ".npy":
        image = read_npy(path, max_pixels)
    else:
        image = read_pil(path, max_pixels)  # PIL_SUFFIXES, and an unknown suffix: let Pillow try before giving up
    names = _matching_names(names, channel_names, image.shape[0], path)
    if isinstance(image, LazyImage):
        return image if channels is None else image.select(_channel_index(image.shape[0], channels, names, path))
    image = _select_channels(image, channels, names, path)
    return validate_image(image, path=path, allow_nonfinite=allow_nonfinite)


def _matching_names(
    names: Sequence[str] | None, given: Sequence[str] | None, n: int, path: Path
) -> Sequence[str] | None:
    """Channel names that count the image's ``n`` channels: wrong ``given`` names are an error, stale metadata is dropped."""
    if names is None or len(names) == n:
        return names
    if given is not None:
        raise InputError(f"{len(names)} channel names given for {n} channel(s)", path=path)
    return None  # stale metadata: ignore rather than mislabel


def _read_ngff(
    path: Path,
    channels: Sequence[int | str] | int | str | None,
    channel_names: Sequence[str] | None,
    z: int | None,
    t: int | None,
    allow_nonfinite: bool,
    max_pixels: int | None,
    lazy_above: int | None,
) -> np.ndarray:
    """:func:`read_image` of an OME-Zarr image: an :class:`NgffImage`, read whole unless larger than ``lazy_above``."""
    image = NgffImage(path, z=z, t=t)
    c, h, w = image.shape
    check_size(h, w, c, image.dtype, max_pixels, path)
    names = channel_names if channel_names is not None else image.channel_names
    if names is not None and len(names) != c:
        raise InputError(f"{len(names)} channel names given for {c} channel(s)", path=path)
    if lazy_above is not None and h * w > lazy_above:
        return image if channels is None else image.select(_channel_index(c, channels, names, path))
    data = _select_channels(np.asarray(image), channels, names, path)
    return validate_image(data, path=path, allow_nonfinite=allow_nonfinite)


def validate_image(
    image: np.ndarray,
    *,
    path: PathLike | None = None,
    allow_nonfinite: bool = False,
    allow_constant: bool = True,
) -> np.ndarray:
    """Check that an image is a usable (C, H, W) array; return it unchanged.

    Parameters
    ----------
    image : ndarray
    path : str or path-like, optional
        File named in the error message.
    allow_nonfinite : bool
        Accept NaN / infinite values in float images.
    allow_constant : bool
        Accept channels with a single value (blank images).

    Raises
    ------
    InputError
        Not 3-D, empty, NaN/inf values, or (when not allowed) a constant channel.
    """
    if image.ndim != 3:
        raise InputError(f"image must be (C, H, W), got shape {image.shape}", path=path)
    if 0 in image.shape:
        raise InputError(f"image is empty (shape {image.shape})", path=path)
    if not allow_nonfinite and np.issubdtype(image.dtype, np.floating):
        bad = np.count_nonzero(~np.isfinite(image))
        if bad:
            raise InputError(f"image contains {bad} NaN or infinite value(s)", path=path)
    if not allow_constant:
        flat = image.reshape(image.shape[0], -1)
        constant = np.flatnonzero(flat.min(axis=1) == flat.max(axis=1))
        if constant.size:
            raise InputError(f"channel(s) {constant.tolist()} are constant (blank image)", path=path)
    return image


def read_image_metadata(path: PathLike) -> dict[str, Any]:
    """Shape, dtype, axes, channel names and pixel size of an image file without reading its pixels.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`read_image` reads.

    Returns
    -------
    meta : dict
        ``shape`` and ``axes`` of the stored array (TIFF series axes, e.g.
        ``"CYX"``; ``"YXS"`` for RGB), ``dtype`` (str), ``channels`` (number of
        channels after :func:`read_image`), ``channel_names`` (list or None),
        ``pixel_size`` ((y, x) in µm, or None) and ``format``.
    """
    path = Path(path)
    meta: dict[str, Any] = {"path": str(path), "channel_names": None, "pixel_size": None}
    if is_ngff(path):
        img = NgffImage(path)
        meta.update(
            format="ome-zarr",
            shape=img._shape,
            axes=img._axes,
            dtype=str(img.dtype),
            channels=img.shape[0],
            channel_names=img.channel_names,
        )
        return meta
    if not path.is_file():
        raise InputError(path_problem(path), path=path)
    suffix = _suffix(path)
    if suffix in TIFF_SUFFIXES:
        tif, axes, info = tiff_series(path)
        try:
            series = tif.series[0]
            shape, dtype = tuple(series.shape), str(series.dtype)
            fmt = "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        finally:
            tif.close()
        meta.update(info)
        channels = int(np.prod([n for a, n in zip(axes, shape) if a not in "YXZT"] or [1]))
        meta.update(format=fmt, shape=shape, axes=axes, dtype=dtype, channels=channels)
    elif suffix == ".dib":
        h, w, _ = dib_header(path)
        meta.update(format="dib", shape=(h, w), axes="YX", dtype="uint16", channels=1)
    elif suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"unreadable .npy file ({exc})", path=path) from None
        axes = {2: "YX", 3: "YXC" if arr.shape[-1] <= 4 < arr.shape[0] else "CYX"}.get(arr.ndim, "?")
        meta.update(
            format="npy",
            shape=tuple(arr.shape),
            axes=axes,
            dtype=str(arr.dtype),
            channels=1 if arr.ndim == 2 else arr.shape[axes.index("C")],
        )
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"unreadable image ({exc})", path=path) from None
        bands = {"L": 1, "1": 1, "I": 1, "I;16": 1, "F": 1, "LA": 1, "RGBA": 3, "RGB": 3, "P": 3}.get(mode, 3)
        dtype = {"I;16": "uint16", "I": "int32", "F": "float32", "1": "bool"}.get(mode, "uint8")
        meta.update(
            format=path.suffix.lower().lstrip(".") or "image",
            shape=(h, w) if bands == 1 else (h, w, bands),
            axes="YX" if bands == 1 else "YXS",
            dtype=dtype,
            channels=bands,
            mode=mode,
        )
        # PNG/JPEG "dpi" is a print resolution, not a physical pixel size: not reported
    return meta


def image_suffix_ok(path: PathLike) -> bool:
    """Whether the file name looks like an image :func:`read_image` reads."""
    name = Path(path).name.lower()
    return bool(re.search(r"\.(tiff?|btf|tf8|png|jpe?g|bmp|gif|webp|npy|dib)$", name))

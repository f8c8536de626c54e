"""Reading microscopy images as (C, H, W) arrays and normalising them.

Every reader returns the channel axis first and keeps the native dtype, so
callers choose how to scale. Problems a user can fix (missing, truncated or
oddly shaped files, unknown channel names) raise :class:`InputError` naming
the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

PathLike = str | os.PathLike

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy", ".dib")

# Cellomics DIB: 40-byte BITMAPINFOHEADER + 12 bytes of colour masks, then pixels.
_DIB_OFFSET = 52

#: Largest image plane (pixels) :func:`read_image` decodes unless given a higher ``max_pixels``.
MAX_PIXELS = 2**30

__all__ = [
    "read_image",
    "read_image_metadata",
    "normalize_percentile",
    "percentile_bounds",
    "validate_image",
    "IMAGE_SUFFIXES",
    "LazyImage",
    "MAX_PIXELS",
]


def _check_size(height: int, width: int, planes: int, dtype: Any, max_pixels: int | None, path: Path) -> None:
    """Refuse an image whose declared plane is larger than ``max_pixels``, before anything is decoded."""
    if max_pixels is None or height * width <= max_pixels:
        return
    gib = height * width * planes * np.dtype(dtype).itemsize / 2**30
    raise InputError(
        f"declares a {height}x{width} image ({planes} plane(s), {gib:.1f} GiB decoded), above the limit of "
        f"{max_pixels:,} pixels per plane; raise it (max_pixels=, --max-image-pixels) if that is meant",
        path=path,
    )


def path_problem(path: PathLike) -> str:
    """Why ``path`` cannot be read as a file, in a few words (for an :class:`InputError`)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "broken symbolic link or link loop"
    return "no such file" if not path.exists() else "not a file"


def _suffix(path: Path) -> str:
    return path.suffix.lower()


# --------------------------------------------------------------------------- DIB


def _dib_header(path: Path) -> tuple[int, int, int]:
    """(height, width, bits per pixel) from a Cellomics DIB header, checked against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_DIB_OFFSET)
    if len(head) < _DIB_OFFSET:
        raise InputError(f"truncated DIB file ({size} bytes, header needs {_DIB_OFFSET})", path=path)
    hsize, width, height, _, bpp, compression = struct.unpack("<IiiHHI", head[:20])
    if hsize != 40 or width <= 0 or height == 0 or bpp != 16 or compression not in (0, 3):
        raise InputError(
            f"not a 16-bit Cellomics DIB (header size {hsize}, {width}x{height}, {bpp} bpp, compression {compression})",
            path=path,
        )
    expected = _DIB_OFFSET + width * abs(height) * 2
    if size != expected:
        raise InputError(
            f"DIB file has {size} bytes, expected {expected} for {abs(height)}x{width} 16-bit pixels", path=path
        )
    return abs(height), width, bpp


def _read_dib(path: Path) -> np.ndarray:
    h, w, _ = _dib_header(path)
    # Row order already matches the BBBC018 outlines; BMP readers would flip it.
    return np.fromfile(path, "<u2", offset=_DIB_OFFSET).reshape(1, h, w)


# -------------------------------------------------------------------------- TIFF


def _ome_info(xml: str | None) -> dict[str, Any]:
    """Channel names and pixel size (µm) from OME-XML."""
    out: dict[str, Any] = {"channel_names": None, "pixel_size": None}
    if not xml:
        return out
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None:
        return out
    names = [ch.get("Name") for ch in pixels if ch.tag.endswith("Channel")]
    if names and all(names):
        out["channel_names"] = names
    scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6, "Å": 1e-4}
    sizes = []
    for ax in ("Y", "X"):
        value = pixels.get(f"PhysicalSize{ax}")
        unit = pixels.get(f"PhysicalSize{ax}Unit", "µm")
        sizes.append(float(value) * scale.get(unit, 1.0) if value is not None else None)
    if all(s is not None for s in sizes):
        out["pixel_size"] = tuple(sizes)
    return out


def _imagej_info(tif: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"channel_names": None, "pixel_size": None}
    meta = tif.imagej_metadata or {}
    labels = meta.get("Labels")
    if isinstance(labels, (list, tuple)) and labels:
        out["channel_names"] = [str(v) for v in labels]
    unit = str(meta.get("unit", "")).replace("\\u00B5", "µ").lower()
    factor = {"micron": 1.0, "microns": 1.0, "µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(unit)
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    tags = page.tags
    if factor is not None and "XResolution" in tags and "YResolution" in tags:
        xr, yr = tags["XResolution"].value, tags["YResolution"].value
        if xr[0] and yr[0]:
            out["pixel_size"] = (factor * yr[1] / yr[0], factor * xr[1] / xr[0])
    return out


@contextlib.contextmanager
def _quiet_tifffile():
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tiff_series(path: Path) -> tuple[Any, str, dict[str, Any]]:
    import tifffile

    try:
        # tifffile logs a warning before failing on corrupt files; the InputError says it all
        with _quiet_tifffile():
            tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, struct.error) as exc:
        raise InputError(f"unreadable TIFF ({exc})", path=path) from None
    if not tif.series:
        tif.close()
        raise InputError("TIFF file holds no image", path=path)
    series = tif.series[0]
    info = (
        _ome_info(tif.ome_metadata)
        if tif.is_ome
        else _imagej_info(tif)
        if tif.is_imagej
        else {
            "channel_names": None,
            "pixel_size": None,
        }
    )
    return tif, series.axes, info


def _canonical_axes(data: np.ndarray, axes: str, path: Path, *, z: int | None, t: int | None) -> tuple[np.ndarray, str]:
    """Move a TIFF series to (C, Y, X), squeezing singleton and selected T/Z planes."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"TIFF series has axes {axes!r} without both Y and X", path=path)
    for ax, index in (("T", t), ("Z", z)):
        if ax not in axes:
            if index not in (None, 0):
                raise InputError(f"plane {ax}={index} requested but the image has no {ax} axis", path=path)
            continue
        i = axes.index(ax)
        n = data.shape[i]
        if index is None:
            if n != 1:
                what = "a Z-stack" if ax == "Z" else "a time series"
                raise InputError(f"{what} with {n} planes; choose one plane ({ax.lower()}=...)", path=path)
            index = 0
        if not -n <= index < n:
            raise InputError(f"plane {ax}={index} out of range (0..{n - 1})", path=path)
        data = np.take(data, index, axis=i)
        axes = axes.replace(ax, "")
    # S (RGB samples) and C are channels; any other leftover axis (Q, I, ...)
    # from plain multi-page TIFFs is taken to be channels too.
    chan = [i for i, a in enumerate(axes) if a not in "YX"]
    if sum(axes[i] not in "CS" for i in chan) > 1:
        raise InputError(
            f"TIFF series of shape {data.shape} has axes {axes!r}: several planes of unknown meaning; "
            "save it with ImageJ or OME axes (e.g. TZCYX) or as one (C, Y, X) image",
            path=path,
        )
    order = chan + [axes.index("Y"), axes.index("X")]
    data = np.transpose(data, order)
    h, w = data.shape[-2:]
    data = data.reshape(-1, h, w)
    return data, "".join(axes[i] for i in order)


class LazyImage:
    """A TIFF image as a (C, H, W) array that reads only the windows asked for.

    Indexing (``img[c, y0:y1, x0:x1]``, ``img[..., y0:y1, x0:x1]``) reads
    through tifffile's zarr store, so only the TIFF tiles or strips under
    the window are decoded; ``np.asarray(img)`` reads it all. Made by
    :func:`read_image` with ``lazy_above``.

    Parameters
    ----------
    path : path-like
    axes : str
        The series' axes as tifffile gives them (e.g. ``"CYX"``, ``"YXS"``).
    shape : tuple of int
        The series' shape.
    dtype : dtype
    z, t : int, optional
        Plane of a Z-stack or time series (as in :func:`read_image`).
    """

    def __init__(
        self,
        path: PathLike,
        axes: str,
        shape: tuple[int, ...],
        dtype: Any,
        *,
        z: int | None = None,
        t: int | None = None,
    ):
        self.path = Path(path)
        axes = axes.upper()
        if "Y" not in axes or "X" not in axes:
            raise InputError(f"TIFF series has axes {axes!r} without both Y and X", path=self.path)
        self._axes, self._shape = axes, tuple(int(n) for n in shape)
        self._fixed: dict[str, int] = {}
        for ax, index in (("T", t), ("Z", z)):
            if ax not in axes:
                if index not in (None, 0):
                    raise InputError(f"plane {ax}={index} requested but the image has no {ax} axis", path=self.path)
                continue
            n = self._shape[axes.index(ax)]
            if index is None and n != 1:
                what = "a Z-stack" if ax == "Z" else "a time series"
                raise InputError(f"{what} with {n} planes; choose one plane ({ax.lower()}=...)", path=self.path)
            index = 0 if index is None else index
            if not -n <= index < n:
                raise InputError(f"plane {ax}={index} out of range (0..{n - 1})", path=self.path)
            self._fixed[ax] = index % n
        rest = [a for a in axes if a not in "YX" and a not in self._fixed]
        big = [a for a in rest if self._shape[axes.index(a)] > 1]
        if len(big) > 1:
            raise InputError(
                f"TIFF series with axes {axes!r} has several channel-like axes; read it whole", path=self.path
            )
        for a in rest:
            if a not in big:
                self._fixed[a] = 0
        self._chan_axis = big[0] if big else None
        self.channels = list(range(self._shape[axes.index(self._chan_axis)] if big else 1))
        self.dtype = np.dtype(dtype)
        self._array = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.channels), self._shape[self._axes.index("Y")], self._shape[self._axes.index("X")])

    ndim = 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"LazyImage({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def select(self, index: Sequence[int]) -> LazyImage:
        """The same image with only the channels at ``index`` (in that order); reads nothing."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.channels = [self.channels[int(i)] for i in index]
        return out

    def __getstate__(self) -> dict[str, Any]:
        # the open zarr store stays behind: a copy sent to another process opens the file again
        return {**self.__dict__, "_array": None}

    def _zarr(self):
        if self._array is None:
            import tifffile
            import zarr

            self._array = zarr.open(tifffile.imread(self.path, aszarr=True, series=0, level=0), mode="r")
        return self._array

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) * (4 - len(key)) + key[1:]
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or any(not isinstance(k, slice) for k in key[1:]):
            raise IndexError(f"LazyImage takes [channels, y0:y1, x0:x1], got {key!r}")
        chans = np.asarray(self.channels)[key[0]]
        sel, kept = [], []
        for a in self._axes:
            if a in self._fixed:
                sel.append(self._fixed[a])
            else:
                sel.append({"Y": key[1], "X": key[2]}.get(a, np.atleast_1d(chans)))
                kept.append(a)
        data = np.asarray(self._zarr().oindex[tuple(sel)])
        order = ([kept.index(self._chan_axis)] if self._chan_axis else []) + [kept.index("Y"), kept.index("X")]
        data = np.transpose(data, order)
        if self._chan_axis is None:
            data = data[None][np.atleast_1d(chans) * 0]
        return data[0] if np.ndim(chans) == 0 else data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self[..., :, :]
        return data if dtype is None else data.astype(dtype)


def is_ngff(path: PathLike) -> bool:
    """Whether ``path`` is an OME-Zarr (NGFF) image: a folder whose zarr group attributes hold ``multiscales``."""
    p = Path(path)
    if not p.is_dir():
        return False
    for meta in (p / ".zattrs", p / "zarr.json"):
        try:
            attrs = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        attrs = attrs.get("attributes", attrs)  # zarr v3 keeps them under "attributes" (NGFF 0.5: in "ome")
        if "multiscales" in attrs or "multiscales" in attrs.get("ome", {}):
            return True
    return False


class NgffImage(LazyImage):
    """An OME-Zarr (NGFF) image's full-resolution level as a (C, H, W) array read window by window.

    Same interface as :class:`LazyImage` (``img[c, y0:y1, x0:x1]`` reads only
    the chunks under the window); ``channel_names`` come from the ``omero``
    channel labels when present. Needs ``zarr`` (``lociseg[dask]``).
    """

    def __init__(self, path: PathLike, *, z: int | None = None, t: int | None = None):
        try:
            import zarr
        except ModuleNotFoundError:
            raise InputError("reading OME-Zarr needs zarr: pip install 'lociseg[dask]'", path=path) from None
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root.attrs)
        attrs = attrs.get("ome", attrs)
        ms = attrs.get("multiscales")
        if not (isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets")):
            raise InputError("OME-Zarr lists no image in its multiscales metadata (nothing to read)", path=path)
        ms = ms[0]
        axes = "".join((a["name"] if isinstance(a, dict) else str(a)).upper() for a in ms.get("axes", "TCZYX"))
        self._level = ms["datasets"][0]["path"]
        try:
            arr = root[self._level]
        except KeyError:
            raise InputError(f"OME-Zarr has no array {self._level!r}, which its multiscales names", path=path) from None
        if arr.nchunks_initialized == 0:  # zarr would read every pixel as the fill value
            raise InputError(f"OME-Zarr array {self._level!r} stores no chunks (missing data, or all blank)", path=path)
        if len(axes) != arr.ndim:
            raise InputError(f"OME-Zarr axes {axes!r} do not match its array of {arr.ndim} dimensions", path=path)
        super().__init__(path, axes, arr.shape, arr.dtype, z=z, t=t)
        labels = [c.get("label") for c in attrs.get("omero", {}).get("channels", [])]
        self.channel_names = [str(x) for x in labels] if labels and len(labels) == self.shape[0] else None

    def _zarr(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_group(str(self.path), mode="r")[self._level]
        return self._array


# ----------------------------------------------------------------------- PIL


def _read_pil(path: Path, max_pixels: int | None = None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            _check_size(im.height, im.width, len(im.getbands()), np.uint8, max_pixels, path)
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "HSV", "LAB"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"unreadable image ({exc})", path=path) from None
    if arr.ndim == 2:
        return arr[None]
    if arr.shape[-1] in (2, 4):  # LA / RGBA: drop alpha
        arr = arr[..., :-1]
    return np.ascontiguousarray(np.moveaxis(arr, -1, 0))


def _read_npy(path: Path, max_pixels: int | None = None) -> np.ndarray:
    try:
        head = np.load(path, mmap_mode="r", allow_pickle=False)
        if head.ndim in (2, 3):
            # (H, W), (C, H, W) or (H, W, C): the two largest axes are the plane
            h, w = sorted(head.shape)[-2:]
            _check_size(h, w, head.size // max(h * w, 1), head.dtype, max_pixels, path)
        del head
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"unreadable .npy file ({exc})", path=path) from None
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        # channels-last only when the last axis is clearly a colour axis
        if arr.shape[-1] <= 4 < arr.shape[0]:
            arr = np.moveaxis(arr, -1, 0)
        return np.ascontiguousarray(arr)
    raise InputError(f".npy array has shape {arr.shape}; expected (H, W), (C, H, W) or (H, W, C)", path=path)


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
        tif, axes, info = _tiff_series(path)
        series = tif.series[0]
        yx = dict(zip(axes.upper(), series.shape))
        plane = yx.get("Y", 1) * yx.get("X", 1)
        try:
            _check_size(
                yx.get("Y", 1),
                yx.get("X", 1),
                int(np.prod(series.shape)) // max(plane, 1),
                series.dtype,
                max_pixels,
                path,
            )
        except InputError:
            tif.close()
            raise
        if lazy_above is not None and plane > lazy_above:
            shape, dtype = tuple(series.shape), series.dtype
            tif.close()
            image = LazyImage(path, axes, shape, dtype, z=z, t=t)
            names = channel_names if channel_names is not None else info["channel_names"]
            if names is not None and len(names) != image.shape[0]:
                if channel_names is not None:
                    raise InputError(f"{len(names)} channel names given for {image.shape[0]} channel(s)", path=path)
                names = None
            return image if channels is None else image.select(_channel_index(image.shape[0], channels, names, path))
        try:
            with warnings.catch_warnings(), _quiet_tifffile():
                warnings.simplefilter("ignore")
                data = tif.series[0].asarray()
        except Exception as exc:  # tifffile raises many types on corrupt data
            raise InputError(f"unreadable TIFF data ({exc.__class__.__name__}: {exc})", path=path) from None
        finally:
            tif.close()
        image, _ = _canonical_axes(data, axes, path, z=z, t=t)
        if names is None:
            names = info["channel_names"]
    elif suffix == ".dib":
        image = _read_dib(path)
    elif suffix == ".npy":
        image = _read_npy(path, max_pixels)
    elif suffix in PIL_SUFFIXES:
        image = _read_pil(path, max_pixels)
    else:
        # unknown suffix: let Pillow try before giving up
        image = _read_pil(path, max_pixels)
    if names is not None and len(names) != image.shape[0]:
        if channel_names is not None:
            raise InputError(f"{len(names)} channel names given for {image.shape[0]} channel(s)", path=path)
        names = None  # stale metadata: ignore rather than mislabel
    image = _select_channels(image, channels, names, path)
    return validate_image(image, path=path, allow_nonfinite=allow_nonfinite)


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
    _check_size(h, w, c, image.dtype, max_pixels, path)
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
        tif, axes, info = _tiff_series(path)
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
        h, w, _ = _dib_header(path)
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


def percentile_bounds(image: np.ndarray, low: float = 1.0, high: float = 99.8, *, rows: int = 1024) -> np.ndarray:
    """The ``low`` and ``high`` percentiles of each channel of a (C, H, W) image, without a float copy of it.

    Integer images are counted into a histogram ``rows`` rows at a time
    (exact, same values as ``np.percentile``'s linear rule); float images
    take ``np.percentile`` one channel at a time. Works on any array that
    slices like NumPy (e.g. a lazily read zarr array).

    Returns
    -------
    bounds : (2, C, 1, 1) float32 ndarray
        ``bounds[0]`` the low, ``bounds[1]`` the high percentiles.

    Raises
    ------
    InputError
        Empty image, or NaN / infinite pixels.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    c, h, w = image.shape
    if c * h * w == 0:
        raise InputError(f"image is empty (shape {tuple(image.shape)})")
    out = np.empty((2, c, 1, 1), np.float32)
    dtype = np.dtype(image.dtype)
    for ch in range(c):
        if dtype.kind in "ui" and dtype.itemsize <= 2:
            base = int(np.iinfo(dtype).min)
            counts = np.zeros(1 << (8 * dtype.itemsize), np.int64)
            for a in range(0, h, rows):
                block = np.asarray(image[ch, a : a + rows]).astype(np.int64).ravel() - base
                counts += np.bincount(block, minlength=len(counts))
            cum = np.cumsum(counts)
            # np.percentile's linear rule: value at virtual index q (n - 1) between its two order statistics
            pos = np.array([low, high]) / 100 * (cum[-1] - 1)
            below = np.floor(pos).astype(np.int64)
            v0 = np.searchsorted(cum, below, side="right") + base
            v1 = np.searchsorted(cum, np.minimum(below + 1, cum[-1] - 1), side="right") + base
            out[:, ch, 0, 0] = v0 + (v1 - v0) * (pos - below)
        else:
            x = np.asarray(image[ch], np.float32)
            if not np.isfinite(x).all():
                raise InputError("image contains NaN or infinite values")
            out[:, ch, 0, 0] = np.percentile(x, [low, high])
    return out


def normalize_percentile(
    image: np.ndarray,
    low: float = 1.0,
    high: float = 99.8,
    *,
    axis: int | tuple[int, ...] = (-2, -1),
    eps: float = 1e-6,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of each channel to 0 and 1.

    Parameters
    ----------
    image : ndarray
        Typically (C, H, W); percentiles are taken over ``axis``.
    low, high : float
        Percentiles (0-100) mapped to 0 and 1; values outside are not clipped.
    axis : int or tuple of int
        Axes the percentiles are computed over (default: the two spatial axes,
        so each channel is scaled on its own).
    eps : float
        Smallest range; a constant channel maps to zeros instead of NaN.
    bounds : (2, ...) ndarray, optional
        Percentiles already measured (e.g. :func:`percentile_bounds` of the
        whole image, to normalise one tile of it the same way); ``low``,
        ``high`` and ``axis`` are then unused.

    Returns
    -------
    out : float32 ndarray of the same shape.

    Raises
    ------
    InputError
        The image contains NaN or infinite values, or is empty.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    x = np.asarray(image)
    if x.size == 0:
        raise InputError(f"image is empty (shape {x.shape})")
    out = x.astype(np.float32)  # the one copy; the rest is done in place (a slide's temporaries are slide-sized)
    if x.dtype.kind not in "biu" and not np.isfinite(out).all():  # integers are always finite
        raise InputError("image contains NaN or infinite values")
    if bounds is None:
        lo, hi = np.percentile(out, [low, high], axis=axis, keepdims=True).astype(np.float32)
    else:
        lo, hi = np.asarray(bounds, np.float32)
    scale = np.maximum(hi - lo, np.float32(eps))
    if np.broadcast_shapes(out.shape, lo.shape) != out.shape:  # e.g. an (H, W) image with (C, 1, 1) bounds
        return (out - lo) / scale  # float32 throughout
    out -= lo
    out /= scale
    return out


def image_suffix_ok(path: PathLike) -> bool:
    """Whether the file name looks like an image :func:`read_image` reads."""
    name = Path(path).name.lower()
    return bool(re.search(r"\.(tiff?|btf|tf8|png|jpe?g|bmp|gif|webp|npy|dib)$", name))

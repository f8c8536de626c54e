"""Per-format image readers: Cellomics DIB, TIFF (with OME / ImageJ metadata), Pillow formats and ``.npy``.

Each returns a (C, H, W) array of the file's dtype; :func:`lociseg.io.read_image`
chooses the reader, selects channels and validates the result.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .lazy import LazyImage

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy", ".dib")

# Cellomics DIB: 40-byte BITMAPINFOHEADER + 12 bytes of colour masks, then pixels.
_DIB_OFFSET = 52


def check_size(height: int, width: int, planes: int, dtype: Any, max_pixels: int | None, path: Path) -> None:
    """Refuse an image whose declared plane is larger than ``max_pixels``, before anything is decoded."""
    if max_pixels is None or height * width <= max_pixels:
        return
    gib = height * width * planes * np.dtype(dtype).itemsize / 2**30
    raise InputError(
        f"declares a {height}x{width} image ({planes} plane(s), {gib:.1f} GiB decoded), above the limit of "
        f"{max_pixels:,} pixels per plane; raise it (max_pixels=, --max-image-pixels) if that is meant",
        path=path,
    )


# --------------------------------------------------------------------------- DIB


def dib_header(path: Path) -> tuple[int, int, int]:
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


def read_dib(path: Path) -> np.ndarray:
    """A Cellomics DIB file as a (1, H, W) uint16 array."""
    h, w, _ = dib_header(path)
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
def quiet_tifffile():
    """Silence tifffile's log below errors (the :class:`InputError` raised instead says it all)."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def tiff_series(path: Path) -> tuple[Any, str, dict[str, Any]]:
    """The open TiffFile (the caller closes it), its first series' axes, and channel names / pixel size."""
    import tifffile

    try:
        # tifffile logs a warning before failing on corrupt files; the InputError says it all
        with quiet_tifffile():
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


def canonical_axes(data: np.ndarray, axes: str, path: Path, *, z: int | None, t: int | None) -> tuple[np.ndarray, str]:
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


# ----------------------------------------------------------------------- PIL


def read_tiff(
    path: Path, *, z: int | None, t: int | None, max_pixels: int | None, lazy_above: int | None
) -> tuple[np.ndarray | LazyImage, list[str] | None]:
    """A TIFF's first series as (C, H, W) (a :class:`LazyImage` when its plane is above ``lazy_above``) and its stored channel names."""
    tif, axes, info = tiff_series(path)
    series = tif.series[0]
    yx = dict(zip(axes.upper(), series.shape))
    plane = yx.get("Y", 1) * yx.get("X", 1)
    try:
        check_size(
            yx.get("Y", 1), yx.get("X", 1), int(np.prod(series.shape)) // max(plane, 1), series.dtype, max_pixels, path
        )
    except InputError:
        tif.close()
        raise
    if lazy_above is not None and plane > lazy_above:
        shape, dtype = tuple(series.shape), series.dtype
        tif.close()
        return LazyImage(path, axes, shape, dtype, z=z, t=t), info["channel_names"]
    try:
        with warnings.catch_warnings(), quiet_tifffile():
            warnings.simplefilter("ignore")
            data = tif.series[0].asarray()
    except Exception as exc:  # tifffile raises many types on corrupt data
        raise InputError(f"unreadable TIFF data ({exc.__class__.__name__}: {exc})", path=path) from None
    finally:
        tif.close()
    image, _ = canonical_axes(data, axes, path, z=z, t=t)
    return image, info["channel_names"]


def read_pil(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """A Pillow-readable image as (C, H, W): palettes and other colour modes become RGB, alpha is dropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            check_size(im.height, im.width, len(im.getbands()), np.uint8, max_pixels, path)
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


def read_npy(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """A ``.npy`` array of shape (H, W), (C, H, W) or (H, W, C) as (C, H, W)."""
    try:
        head = np.load(path, mmap_mode="r", allow_pickle=False)
        if head.ndim in (2, 3):
            # (H, W), (C, H, W) or (H, W, C): the two largest axes are the plane
            h, w = sorted(head.shape)[-2:]
            check_size(h, w, head.size // max(h * w, 1), head.dtype, max_pixels, path)
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

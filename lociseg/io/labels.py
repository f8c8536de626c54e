"""Instance label images: reading, writing and converting annotation formats.

A label image is a 2-D integer array, 0 = background and 1..N = objects.
Converters turn the common ways people store instance annotations (one binary
mask per object, 1-pixel outlines, Kaggle run-length strings) into it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import skimage.segmentation
from scipy import ndimage as ndi

from ..errors import InputError
from .image import IMAGE_SUFFIXES, read_image

PathLike = str | os.PathLike

__all__ = [
    "read_labels",
    "write_labels",
    "relabel_sequential",
    "masks_to_labels",
    "outlines_to_labels",
    "label_dtype",
    "refuse_intensity_image",
]


def label_dtype(n_max: int) -> np.dtype:
    """Smallest unsigned dtype used to store labels up to ``n_max`` (uint16, else uint32)."""
    if n_max > np.iinfo(np.uint32).max:
        raise ValueError(f"{n_max} labels do not fit in uint32")
    return np.dtype(np.uint16 if n_max <= np.iinfo(np.uint16).max else np.uint32)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber the objects of a label image as 1..N, keeping their order; 0 stays background.

    Parameters
    ----------
    labels : (H, W) non-negative integer ndarray
        Relabelled by ``skimage.segmentation.relabel_sequential``.

    Returns
    -------
    relabelled : (H, W) int32 ndarray (int64 when there are more than 2**31 - 1 objects).
    """
    labels = np.asarray(labels)
    if not labels.size:
        return labels.astype(np.int32)
    relabelled, forward, _ = skimage.segmentation.relabel_sequential(labels)
    dtype = np.int32 if len(forward.in_values) < np.iinfo(np.int32).max else np.int64
    return relabelled.astype(dtype, copy=False)


def _labels_from_colours(rgb: np.ndarray) -> np.ndarray:
    """Instance ids from a colour-coded (3, H, W) label image: each colour is one object, black is background."""
    flat = rgb.reshape(rgb.shape[0], -1).T.astype(np.int64)
    code = (flat[:, 0] << 32) | (flat[:, 1] << 16) | flat[:, 2]
    return relabel_sequential(code.reshape(rgb.shape[1:]))


def read_labels(path: PathLike) -> np.ndarray:
    """Read an instance label image.

    Parameters
    ----------
    path : str or path-like
        TIFF / PNG / ``.npy`` label image of one 2-D integer plane, a
        colour-coded 8-bit RGB label image (each colour one object, black
        the background; a PNG's alpha is ignored), or a whitespace-separated integer text matrix
        (``.txt``, ``.csv`` or gzip-compressed ``.gz``).

    Returns
    -------
    labels : (H, W) int32 ndarray
        Label values are kept as stored (not renumbered).

    Raises
    ------
    InputError
        Unreadable file, more than one plane (other than 8-bit RGB),
        negative or non-integer values.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".txt", ".gz", ".csv")):
        if not path.is_file():
            raise InputError("no such file", path=path)
        try:
            arr = np.loadtxt(
                path, dtype=np.int64, delimiter="," if name.endswith((".csv", ".csv.gz")) else None, ndmin=2
            )
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"not an integer label matrix ({exc})", path=path) from None
    else:
        img = read_image(path)
        if img.shape[0] == 3 and img.dtype == np.uint8:
            if np.array_equal(img[0], img[1]) and np.array_equal(img[0], img[2]):
                arr = img[0]
            else:
                arr = _labels_from_colours(img)
        elif img.shape[0] != 1:
            raise InputError(
                f"label image has {img.shape[0]} planes of {img.dtype}; expected one 2-D integer image "
                "(colour-coded labels only as 8-bit RGB)",
                path=path,
            )
        else:
            arr = img[0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise InputError("label image has non-integer values (labels are whole numbers)", path=path)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"label image has {arr.dtype} values; expected integers", path=path)
    if arr.size and arr.min() < 0:
        raise InputError("label image has negative values", path=path)
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise InputError(f"label value {arr.max()} too large", path=path)
    return arr.astype(np.int32)


def write_labels(path: PathLike, labels: np.ndarray, *, compress: bool = True) -> Path:
    """Write an instance label image as a (deflate-compressed) TIFF.

    Parameters
    ----------
    path : str or path-like
        Output file; ``.ome.tif``/``.ome.tiff`` writes OME-TIFF, ``.png``
        a 16-bit PNG, ``.npy`` a NumPy file; anything else a plain TIFF.
    labels : (H, W) integer ndarray
        Values must be >= 0.
    compress : bool
        Zlib (deflate) compression for TIFF; lossless and small for labels.

    Returns
    -------
    path : Path
        The file written.

    Notes
    -----
    Stored as uint16, or uint32 when any label exceeds 65535, so every
    common reader (Fiji, napari, QuPath) opens it.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be 2-D, got shape {labels.shape}", path=path)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise InputError(f"labels must be integers, got {labels.dtype}", path=path)
    n_max = int(labels.max()) if labels.size else 0
    if labels.size and labels.min() < 0:
        raise InputError("labels must not be negative", path=path)
    arr = labels.astype(label_dtype(n_max), copy=False)  # no second copy of a large label image
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    if name.endswith(".npy"):
        np.save(path, arr)
    elif name.endswith(".png"):
        from PIL import Image

        if arr.dtype != np.uint16:
            raise InputError(f"{n_max} labels do not fit a 16-bit PNG; write a .tif", path=path)
        Image.fromarray(arr).save(path)
    else:
        import tifffile

        ome = name.endswith((".ome.tif", ".ome.tiff"))
        tifffile.imwrite(
            path,
            arr,
            compression="zlib" if compress else None,
            ome=ome,
            photometric="minisblack",
            metadata={"axes": "YX"},
        )
    return path


def masks_to_labels(
    masks: PathLike | Iterable[PathLike] | Iterable[np.ndarray], shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Combine one binary mask per object into an instance label image.

    Parameters
    ----------
    masks : folder, iterable of paths, or iterable of (H, W) arrays
        A folder is read in sorted file-name order; any non-zero pixel belongs
        to the object. Object ``k`` (in that order) gets label ``k + 1``.
    shape : (H, W), optional
        Label image shape when there are no masks (else taken from the masks).

    Returns
    -------
    labels : (H, W) int32 ndarray

    Notes
    -----
    Overlapping pixels go to the later mask (a warning says how many); empty
    masks are skipped without using up a label.
    """
    if isinstance(masks, (str, os.PathLike)):
        folder = Path(masks)
        if not folder.is_dir():
            raise InputError("mask folder not found", path=folder)
        items: Sequence = sorted(p for p in folder.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES))
    else:
        items = list(masks)
    labels = None if shape is None else np.zeros(shape, np.int32)
    overlap = 0
    k = 0
    for item in items:
        if isinstance(item, np.ndarray):
            m = item
        else:
            img = read_image(item)
            m = img.max(axis=0) if img.shape[0] > 1 else img[0]
        m = np.asarray(m) > 0
        if labels is None:
            labels = np.zeros(m.shape, np.int32)
        if m.shape != labels.shape:
            where = None if isinstance(item, np.ndarray) else item
            raise InputError(f"mask shape {m.shape} differs from {labels.shape}", path=where)
        if not m.any():
            continue
        k += 1
        overlap += int(np.count_nonzero(labels[m]))
        labels[m] = k
    if labels is None:
        raise InputError("no masks given and no shape to make an empty label image")
    if overlap:
        warnings.warn(f"{overlap} pixels belong to more than one mask; later masks win", stacklevel=2)
    return labels


def outlines_to_labels(
    outline: np.ndarray,
    *,
    min_size: int = 15,
    connectivity: int = 1,
    max_fill_distance: float = 2.0,
) -> np.ndarray:
    """Fill an image of closed 1-pixel outlines into touching instances.

    Parameters
    ----------
    outline : (H, W) ndarray
        Non-zero (True) on outline pixels.
    min_size : int
        Enclosed regions smaller than this (pixels, before the outline is
        added) are dropped: they are gaps between touching outlines.
    connectivity : int
        Connectivity of the enclosed regions: 1 (4-neighbours, the default)
        so that a diagonal step of an 8-connected outline still closes it.
    max_fill_distance : float
        Outline pixels at most this far from a region join the nearest one.

    Returns
    -------
    labels : (H, W) int32 ndarray, objects numbered 1..N in raster order.

    Notes
    -----
    The regions of non-outline pixels are labelled; the largest one is the
    background and is dropped (a cell cut by the image border whose outline
    is open at the border merges with it and is lost). Outline pixels are
    then given to the nearest kept region, so neighbours share their
    boundary as in painted label images instead of leaving a 1-pixel gap;
    outline pixels only next to background join the cell they outline.
    Enclosed background pockets between cells are kept here: callers that
    know better (e.g. "cells must contain a nucleus") filter them.
    """
    line = np.asarray(outline) > 0
    if line.ndim != 2:
        raise InputError(f"outline image must be 2-D, got shape {line.shape}")
    structure = ndi.generate_binary_structure(2, connectivity)
    regions, n = ndi.label(~line, structure=structure)
    if n == 0:
        return np.zeros(line.shape, np.int32)
    sizes = np.bincount(regions.ravel(), minlength=n + 1)
    sizes[0] = 0
    keep = sizes >= min_size
    keep[int(np.argmax(sizes))] = False  # background
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = lut[regions]
    return fill_outline_pixels(labels, line, max_distance=max_fill_distance)


def fill_outline_pixels(labels: np.ndarray, line: np.ndarray, *, max_distance: float = 2.0) -> np.ndarray:
    """Give each outline pixel (``line``) the label of the nearest object within ``max_distance``."""
    grown = skimage.segmentation.expand_labels(labels, distance=max_distance)
    return np.where(line, grown, labels).astype(np.int32)


def refuse_intensity_image(labels: np.ndarray, path: PathLike | None = None) -> None:
    """Refuse an intensity image given as labels: a label image's neighbouring pixels mostly agree.

    Inside a cell every pixel has the cell's value, so in a label image few
    pairs of neighbouring foreground pixels differ (only where two cells
    touch); in a raw microscope image, with noise on every pixel, most do.
    Checked only above 255 values: fewer cannot make the thousands of
    outlines that make such a mistake slow.

    Raises
    ------
    InputError
        More than half of the neighbouring foreground pairs differ.
    """
    a = np.asarray(labels)
    if a.ndim != 2 or a.shape[1] < 2 or not a.size or int(a.max()) <= 255:
        return
    left, right = a[:, :-1], a[:, 1:]
    both = (left > 0) & (right > 0)
    pairs = int(np.count_nonzero(both))
    differ = int(np.count_nonzero(both & (left != right)))
    if pairs and differ > 0.5 * pairs:
        raise InputError(
            f"looks like an intensity image, not labels: {100 * differ / pairs:.0f}% of neighbouring pixels differ "
            "(in a label image a cell's pixels share one value)",
            path=path,
        )

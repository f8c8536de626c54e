"""Pass 3 of a block run: the OME-Zarr label image (with its pyramid), written chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..export.formats import create_ome_zarr
from ..ops.labels import fill_label_holes
from .cluster import release_memory
from .grid import Block, Box, grow, intersect, within
from .scratch import final_path

#: Chunk side of the stored levels is the block side halved per level, down to this.
MIN_CHUNK = 64
#: Smallest side of the coarsest pyramid level.
MIN_LEVEL_SIZE = 256


def pyramid_levels(shape: tuple[int, int], block_size: int) -> int:
    """Number of stored levels: halve while the smaller side stays >= 256 and chunks stay whole (>= 64 px)."""
    n = 1
    while min(shape) // 2**n >= MIN_LEVEL_SIZE and block_size % 2**n == 0 and block_size // 2**n >= MIN_CHUNK:
        n += 1
    return n


def write_block(
    scratch: Path,
    chunk: Box,
    near: Sequence[Block],
    renumber: np.ndarray,
    shape: tuple[int, int],
    halo: int,
    store: Path,
    levels: int,
    image: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pass 3: assemble one chunk of the label image from the resolved blocks, fill holes, write every level.

    Parameters
    ----------
    scratch : Path
    block : Block
    near : sequence of Block
        Blocks whose extent meets the core grown by ``halo``.
    renumber : (G + 1,) ndarray
        Global id -> final label (0 for dropped cells).
    shape : (H, W)
    halo : int
        Margin read around the core, so holes are filled as on the whole image.
    store : Path
        The OME-Zarr folder (arrays made by :func:`create_store`).
    levels : int
    image : (C, H, W) array-like, optional
        Copied into the store's image levels (the labels' NGFF parent image).

    Returns
    -------
    labels, area, sum_y, sum_x : ndarrays
        Per final label present in the core: its pixel count and coordinate sums.
    """
    import zarr

    window = grow(chunk, halo, shape)
    wy, wx = window[1] - window[0], window[3] - window[2]
    labels = np.zeros((wy, wx), renumber.dtype)
    for other in near:
        meet = intersect(window, other.ext)
        if meet is None:
            continue
        part = np.load(final_path(scratch, other.index), mmap_mode="r")[within(meet, other.ext)]
        sub = labels[within(meet, window)]
        np.maximum(sub, renumber[part], out=sub)  # at most one block put a cell on a pixel
    fill_label_holes(labels)
    core = labels[within(chunk, window)]
    y0, y1, x0, x1 = chunk
    root = zarr.open_group(str(store), mode="r+")
    for lev in range(levels):
        s = 2**lev
        sel = (slice(y0 // s, -(-y1 // s)), slice(x0 // s, -(-x1 // s)))
        root[f"labels/cells/{lev}"][sel] = core[::s, ::s]
        if image is not None:
            root[str(lev)][(slice(None), *sel)] = np.asarray(image[..., y0:y1:s, x0:x1:s])
    ids, inverse = np.unique(core, return_inverse=True)
    inverse = inverse.ravel()
    ys, xs = np.mgrid[y0:y1, x0:x1]
    area = np.bincount(inverse, minlength=len(ids))
    sy = np.bincount(inverse, ys.ravel().astype(np.float64), minlength=len(ids))
    sx = np.bincount(inverse, xs.ravel().astype(np.float64), minlength=len(ids))
    keep = ids > 0
    del labels, core, ys, xs, inverse
    release_memory()
    return ids[keep].astype(np.int64), area[keep], sy[keep], sx[keep]


def create_store(
    path: Path,
    shape: tuple[int, int],
    block_size: int,
    levels: int,
    dtype: Any,
    image: Any = None,
    channel_names: Sequence[str] | None = None,
    bounds: np.ndarray | None = None,
    name: str = "image",
) -> None:
    """The empty OME-Zarr of :func:`~lociseg.export.formats.create_ome_zarr`, chunked by blocks.

    Without ``image`` the parent image is a one-channel uint8 placeholder that
    stores no chunks (all zero). ``bounds`` (the percentiles that normalised
    the image, (2, C, 1, 1)) is each channel's display window.
    """
    nch = 1 if image is None else int(image.shape[0])
    idtype = np.dtype(np.uint8 if image is None else image.dtype)
    if channel_names and len(channel_names) == nch:
        names = [str(n) for n in channel_names]
    else:
        names = ["no image"] if image is None else [f"channel {c}" for c in range(nch)]
    full = (float(np.iinfo(idtype).min), float(np.iinfo(idtype).max)) if idtype.kind in "ui" else (None, None)
    windows = []
    for c in range(nch):
        lo, hi = (
            (0.0, 1.0)
            if image is None or bounds is None
            else (float(bounds[0, c].flat[0]), float(bounds[1, c].flat[0]))
        )
        windows.append((lo, hi, lo if full[0] is None else full[0], hi if full[1] is None else full[1]))
    create_ome_zarr(
        path,
        shape,
        chunks=[block_size // 2**i for i in range(levels)],
        image_dtype=idtype,
        label_dtype=dtype,
        channel_names=names,
        windows=windows,
        name=name,
    )

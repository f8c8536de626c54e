"""Pass 3 of a block run: the OME-Zarr label image (with its pyramid), written chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
) -> None:
    """An empty NGFF 0.4 image with ``labels/cells`` (zarr v2 layout, as napari and ome-zarr-py read it).

    Without ``image`` the parent image is a one-channel uint8 placeholder that
    stores no chunks (all zero).
    """
    import zarr

    h, w = shape
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    space = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]

    def datasets(ndim: int) -> list[dict[str, Any]]:
        return [
            {
                "path": str(i),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0] * (ndim - 2) + [2.0**i, 2.0**i]}],
            }
            for i in range(levels)
        ]

    nch = 1 if image is None else int(image.shape[0])
    idtype = np.uint8 if image is None else image.dtype
    for i in range(levels):
        s, c = 2**i, block_size // 2**i
        root.create_array(str(i), shape=(nch, -(-h // s), -(-w // s)), chunks=(1, c, c), dtype=idtype, fill_value=0)
    names = (
        list(channel_names)
        if channel_names
        else (["no image"] if image is None else [f"channel {c}" for c in range(nch)])
    )
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": path.name,
            "axes": [{"name": "c", "type": "channel"}, *space],
            "datasets": datasets(3),
        }
    ]
    root.attrs["omero"] = {"channels": [{"label": str(n), "active": True} for n in names]}
    lab = root.require_group("labels")
    lab.attrs["labels"] = ["cells"]
    g = lab.require_group("cells")
    for i in range(levels):
        s, c = 2**i, block_size // 2**i
        g.create_array(str(i), shape=(-(-h // s), -(-w // s)), chunks=(c, c), dtype=dtype, fill_value=0)
    g.attrs["multiscales"] = [{"version": "0.4", "name": "cells", "axes": space, "datasets": datasets(2)}]
    g.attrs["image-label"] = {"version": "0.4", "source": {"image": "../../"}}

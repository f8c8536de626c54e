"""One large image, segmented block by block on a Dask cluster and stitched into an OME-Zarr label image.

The image is cut into *blocks* whose cores partition it. A block is a group
of whole tiles of the single-process tiling at model scale
(:func:`tile_blocks`), so every tile is predicted once, exactly as
``lociseg segment`` without a cluster predicts it; its *extent* is the
input window under its tiles. Three passes, with small results gathered in
between:

1. **segment** (a task per block): a worker reads the block's tiles lazily
   (a TIFF through tifffile's zarr store, an OME-Zarr, any sliceable array),
   runs the single-process tiled paster on them
   (:meth:`~lociseg.predict.Segmenter.paste_tiles` with ``region``,
   ``tiles`` and ``keep``: the same code as without a cluster) and keeps
   only the cells *located* in its core, so every cell comes from exactly
   one block, and whole, since a tile holds every cell located in its core.
   The block's labels and cell scores go to a scratch folder. The client
   then numbers all cells by descending score, so a smaller global id means
   a better cell.
2. **resolve** (a task per block): where cells of neighbouring blocks
   overlap, the better (smaller id) takes the pixel, as in the
   single-process paster; each block decides for its own cells only,
   cutting a cell that lost pixels to its largest piece or dropping it
   (:func:`~lociseg.predict.paste.trim_cell`). A pixel goes to at most one
   cell, and each cell is decided in one place, so no cell is duplicated or
   cut at a seam.
3. **write** (a task per chunk of a regular grid): the chunk is assembled
   from the resolved blocks around it, renumbered 1..N by descending score,
   holes filled, and written as whole chunks of every pyramid level of the
   OME-Zarr ``labels/cells`` image (so no two tasks write one chunk), with
   per-cell sums for the table.

No process holds more than a block's extent and its neighbours' windows.
Pass 1 results survive a crash: a rerun segments only the blocks missing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .. import __version__
from ..errors import ConfigError, InputError
from ..io import label_dtype
from ..io.files import atomic_write, sha256_file
from ..ops.labels import fill_label_holes
from ..predict.api import TABLE_COLUMNS, CellTable, folder_record, load_model
from ..predict.paste import trim_cell
from ..predict.tiling import axis_tiles
from ..transforms import scaled_shape
from .cluster import cached_segmenter, release_memory

Box = tuple[int, int, int, int]
#: Chunk side of the stored levels is the block side halved per level, down to this.
MIN_CHUNK = 64
#: Smallest side of the coarsest pyramid level.
MIN_LEVEL_SIZE = 256


@dataclass(frozen=True)
class Block:
    """One block of a large image.

    Attributes
    ----------
    index : int
        Position in the grid's list (row by row).
    core : (y0, y1, x0, x1)
        The cells located here (input pixels; bounds may be fractional or
        infinite on the image border) belong to this block; the cores
        partition the image.
    ext : (y0, y1, x0, x1)
        Integer window around the core, clipped to the image, that holds
        every pixel of the block's cells: what its labels cover.
    tiles : (y0, y1, x0, x1) or None
        The window at model scale that the block predicts, tile by tile
        (:func:`tile_blocks`: whole tiles of the whole image's tiling).
    """

    index: int
    core: tuple[float, float, float, float]
    ext: Box
    tiles: Box | None = None


def block_grid(shape: tuple[int, int], block_size: int, halo: int) -> list[Block]:
    """Blocks of ``block_size`` (the last of a row or column may be smaller) with a ``halo`` around each."""
    if block_size < 1 or halo < 0:
        raise ConfigError(f"block size must be positive and halo not negative, got {block_size}, {halo}")
    h, w = int(shape[0]), int(shape[1])
    out = []
    for y in range(0, h, block_size):
        for x in range(0, w, block_size):
            core = (y, min(y + block_size, h), x, min(x + block_size, w))
            ext = (max(y - halo, 0), min(core[1] + halo, h), max(x - halo, 0), min(core[3] + halo, w))
            out.append(Block(len(out), core, ext))
    return out


def tile_blocks(
    shape: tuple[int, int], factor: float, tile_size: int, overlap: int, align: int, block_size: int
) -> list[Block]:
    """Blocks that are groups of whole tiles of the single-process tiling of the image.

    The image at model scale (``factor``) is tiled as
    :func:`~lociseg.predict.tiling.iter_tiles` tiles it; about
    ``block_size / step`` consecutive tiles per axis (``step`` the tile
    stride in input pixels) form a block, whose core is the union of its
    tiles' cores mapped to input pixels. Every tile is predicted once, by
    one block, exactly as in the single-process pass, so splitting the
    image costs no extra inference.
    """
    model_shape = scaled_shape(shape, factor)
    axes = []
    for n_in, n_model in zip(shape, model_shape):
        tm = n_model / n_in  # model pixels per input pixel on this axis
        tiles = axis_tiles(n_model, tile_size, overlap, align)
        step = max(align, (tile_size - overlap) // align * align)  # the tiling's stride (the last tile may be closer)
        k = max(1, round(block_size * tm / step))
        groups = []
        for g in (tiles[j : j + k] for j in range(0, len(tiles), k)):
            start, end, c0, c1 = g[0][0], g[-1][1], g[0][2], g[-1][3]
            # a location's input coordinate, as rescale_instances maps it (pixel centres)
            core = ((c0 + 0.5) / tm - 0.5, (c1 + 0.5) / tm - 0.5)
            ext = (max(0, int(math.floor(start / tm)) - 2), min(n_in, int(math.ceil(end / tm)) + 2))
            groups.append((core, ext, (start, end)))
        axes.append(groups)
    out = []
    for (cy, ey, ty), (cx, ex, tx) in itertools.product(*axes):
        out.append(Block(len(out), (*cy, *cx), (*ey, *ex), (*ty, *tx)))
    return out


def _meet(a: Box, b: Box) -> Box | None:
    """The intersection of two boxes, or None."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def _within(box: Box, origin: Box) -> tuple[slice, slice]:
    """Slices of ``box`` in the coordinates of an array that starts at ``origin``'s corner."""
    return slice(box[0] - origin[0], box[1] - origin[0]), slice(box[2] - origin[2], box[3] - origin[2])


def _grow(box: Box, by: int, shape: tuple[int, int]) -> Box:
    return (max(box[0] - by, 0), min(box[1] + by, shape[0]), max(box[2] - by, 0), min(box[3] + by, shape[1]))


def _near(box: Box, blocks: Sequence[Block]) -> list[Block]:
    """Blocks whose extent meets ``box``."""
    return [b for b in blocks if _meet(box, b.ext) is not None]


# ------------------------------------------------------------------ scratch files


def _labels_path(scratch: Path, i: int) -> Path:
    return scratch / f"b{i:06d}.labels.npy"


def _scores_path(scratch: Path, i: int) -> Path:
    return scratch / f"b{i:06d}.scores.npy"


def _final_path(scratch: Path, i: int) -> Path:
    return scratch / f"b{i:06d}.final.npy"


def save_block(scratch: Path, index: int, labels: np.ndarray, scores: np.ndarray) -> None:
    """Store pass 1's result of a block: labels over its extent (cells 1..n) and the cells' scores.

    The scores file is written last and marks the block as done.
    """
    atomic_write(_labels_path(scratch, index), lambda p: np.save(p, labels), overwrite=True)
    atomic_write(_scores_path(scratch, index), lambda p: np.save(p, np.asarray(scores, np.float32)), overwrite=True)


def block_done(scratch: Path, index: int) -> np.ndarray | None:
    """The cell scores of a block that pass 1 finished (in this or an earlier run), else None."""
    p = _scores_path(scratch, index)
    try:
        return np.load(p) if p.exists() and _labels_path(scratch, index).exists() else None
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ pass 1


def segment_block(
    image: Any,
    block: Block,
    scratch: Path,
    model: str,
    device: str,
    bounds: np.ndarray,
    factor: float,
    settings: dict[str, Any],
) -> int:
    """Pass 1 on a worker: segment the block's extent and keep the cells located in its core.

    The extent is predicted on the model-scale grid of the whole image
    (:meth:`~lociseg.predict.Segmenter.paste_tiles` with ``region``), so a
    cell's prediction does not depend on where the blocks are cut.

    Parameters
    ----------
    image : (C, H, W) array-like
        The model's channels, sliceable without reading the rest (a
        :class:`~lociseg.io.LazyImage` or zarr array).
    block : Block
    scratch : Path
        Folder for the result (:func:`save_block`).
    model, device : str
        Loaded once per worker (:func:`~lociseg.scale_out.cluster.cached_segmenter`).
    bounds : (2, C, 1, 1) ndarray
        Normalisation percentiles of the whole image.
    factor : float
        Input to model scale.
    settings : dict
        ``tile_size``, ``overlap``, ``augment`` and the paster's rules
        (``threshold``, ``min_area`` in input pixels, ``min_fragment_fraction``, ``overlaps``).

    Returns
    -------
    int
        Number of cells the block owns.
    """
    done = block_done(scratch, block.index)
    if done is not None:
        return len(done)  # finished by an earlier attempt or run
    seg = cached_segmenter(model, device)
    # the whole image, read only under the tiles of the block's extent, on the whole image's tile grid
    labels, scores = seg.paste_tiles(
        image, bounds, factor, region=block.ext, tiles=block.tiles, keep=block.core, fill_holes=False, **settings
    )
    save_block(scratch, block.index, labels, scores)
    del labels
    release_memory()
    return len(scores)


# ------------------------------------------------------------------ pass 2


def global_ids(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per block, the global id of each of its cells (index 0 -> 0): all cells by descending score.

    Equal scores keep block order, then the block's own order.
    """
    allscores = np.concatenate([np.zeros(0, np.float32), *[np.asarray(s, np.float32) for s in scores]])
    order = np.argsort(-allscores.astype(np.float64), kind="stable")
    gid = np.empty(len(allscores), np.int64)
    gid[order] = np.arange(1, len(allscores) + 1)
    out, a = [], 0
    for s in scores:
        out.append(np.concatenate([[0], gid[a : a + len(s)]]).astype(np.int64))
        a += len(s)
    return out


def resolve_block(
    scratch: Path,
    block: Block,
    near: Sequence[Block],
    luts: dict[int, np.ndarray],
    *,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
) -> np.ndarray:
    """Pass 2: decide the block's own cells against the overlapping cells of the blocks ``near`` it.

    A pixel of the block's extent goes to the cell with the smallest global
    id (best score) that any block put there; each own cell keeps the pixels
    it wins, cut to its largest piece, and is dropped below ``min_area`` or
    below ``min_fragment_fraction`` of its area before (the paster's rules).
    The result (global ids over the extent, own cells only) goes to scratch.

    Parameters
    ----------
    scratch : Path
    block : Block
    near : sequence of Block
        Blocks whose extent meets this block's (itself may be among them).
    luts : dict
        Block index -> global id of each local label (:func:`global_ids`).
    min_area, min_fragment_fraction
        As in :func:`~lociseg.predict.paste.paste_instances`, ``min_area`` in input pixels.

    Returns
    -------
    (M,) int64 ndarray
        Global ids of the cells kept.
    """
    top = np.iinfo(np.int64).max
    own = np.load(_labels_path(scratch, block.index))
    lut = luts[block.index]
    gid = lut[own]
    claim = np.where(gid > 0, gid, top)
    for other in near:
        meet = _meet(block.ext, other.ext) if other.index != block.index else None
        if meet is None:
            continue
        part = luts[other.index][np.load(_labels_path(scratch, other.index), mmap_mode="r")[_within(meet, other.ext)]]
        sub = claim[_within(meet, block.ext)]
        np.minimum(sub, np.where(part > 0, part, top), out=sub)
    final = np.where(claim == gid, gid, 0)
    del claim
    area = np.bincount(own.ravel(), minlength=len(lut))
    kept = [
        int(lut[k])
        for k, box in enumerate(ndi.find_objects(own), start=1)
        if box is not None and trim_cell(final, int(lut[k]), min_area, min_fragment_fraction * area[k], box)
    ]
    final = final.astype(np.uint32 if int(lut.max(initial=0)) < 2**32 else np.uint64)
    atomic_write(_final_path(scratch, block.index), lambda p: np.save(p, final), overwrite=True)
    del own, gid
    release_memory()
    return np.asarray(sorted(kept), np.int64)


# ------------------------------------------------------------------ pass 3


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
        The OME-Zarr folder (arrays made by :func:`_create_store`).
    levels : int
    image : (C, H, W) array-like, optional
        Copied into the store's image levels (the labels' NGFF parent image).

    Returns
    -------
    labels, area, sum_y, sum_x : ndarrays
        Per final label present in the core: its pixel count and coordinate sums.
    """
    import zarr

    window = _grow(chunk, halo, shape)
    wy, wx = window[1] - window[0], window[3] - window[2]
    labels = np.zeros((wy, wx), renumber.dtype)
    for other in near:
        meet = _meet(window, other.ext)
        if meet is None:
            continue
        part = np.load(_final_path(scratch, other.index), mmap_mode="r")[_within(meet, other.ext)]
        sub = labels[_within(meet, window)]
        np.maximum(sub, renumber[part], out=sub)  # at most one block put a cell on a pixel
    fill_label_holes(labels)
    core = labels[_within(chunk, window)]
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


def _create_store(
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


# ------------------------------------------------------------------ drivers


def _map(client: Any, fn: Callable[..., Any], calls: Sequence[tuple], **kwargs: Any) -> list[Any]:
    """``fn(*args, **kwargs)`` for each ``args``: on the cluster when ``client`` is given, else here."""
    if client is None:
        return [fn(*args, **kwargs) for args in calls]
    futures = [client.submit(fn, *args, pure=False, **kwargs) for args in calls]
    return client.gather(futures)


def stitch_blocks(
    client: Any,
    blocks: Sequence[Block],
    scratch: Path,
    store: Path,
    shape: tuple[int, int],
    halo: int,
    scores: Sequence[np.ndarray],
    *,
    chunk_size: int | None = None,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
    image: Any = None,
    channel_names: Sequence[str] | None = None,
) -> CellTable:
    """Passes 2 and 3 on blocks that pass 1 finished: the OME-Zarr at ``store`` and the cell table.

    Parameters
    ----------
    client : distributed.Client or None
        None runs every task in this process (tests).
    blocks : sequence of Block
        :func:`tile_blocks` or :func:`block_grid` of the image.
    scratch : Path
        Holds pass 1's results of every block.
    store : Path
        The ``.ome.zarr`` folder to write (created).
    shape : (H, W)
    halo : int
        At least the extent of a cell: the margin read around each chunk.
    scores : sequence of ndarrays
        Per block, its cells' scores (pass 1).
    chunk_size : int, optional
        Side of the stored chunks, each written by one task (default: the
        largest block core); a multiple of 64 for the pyramid levels.
    min_area, min_fragment_fraction
        The paster's rules, ``min_area`` in input pixels.
    image, channel_names
        Stored as the labels' parent image (see :func:`write_block`).

    Returns
    -------
    CellTable
        Cells 1..N by descending score (centroids in image pixels).
    """
    luts = global_ids(scores)
    block_size = chunk_size or int(max(b.core[1] - b.core[0] for b in blocks))
    near = [[o.index for o in _near(b.ext, blocks)] for b in blocks]
    kept = _map(
        client,
        resolve_block,
        [(scratch, b, [blocks[i] for i in near[b.index]], {i: luts[i] for i in near[b.index]}) for b in blocks],
        min_area=min_area,
        min_fragment_fraction=min_fragment_fraction,
    )
    survivors = np.sort(np.concatenate([np.zeros(0, np.int64), *kept]))
    total = sum(len(s) for s in scores)
    dtype = label_dtype(len(survivors))
    renumber = np.zeros(total + 1, dtype)
    renumber[survivors] = np.arange(1, len(survivors) + 1)  # survivors by id = by descending score
    levels = pyramid_levels(shape, block_size)
    _create_store(store, shape, block_size, levels, dtype, image, channel_names)
    if client is not None:
        [renumber] = client.scatter([renumber], broadcast=True)
    stats = _map(
        client,
        write_block,
        [(scratch, c.core, _near(_grow(c.core, halo, shape), blocks)) for c in block_grid(shape, block_size, 0)],
        renumber=renumber,
        shape=shape,
        halo=halo,
        store=store,
        levels=levels,
        image=image,
    )
    n = len(survivors)
    area = np.zeros(n + 1, np.int64)
    sy, sx = np.zeros(n + 1), np.zeros(n + 1)
    for ids, a, y, x in stats:
        area[ids] += a
        sy[ids] += y
        sx[ids] += x
    allscores = np.concatenate([np.zeros(1, np.float32), *[np.asarray(s, np.float32) for s in scores]])
    score = np.zeros(n, np.float32)
    flat = np.concatenate([lut[1:] for lut in luts]) if luts else np.zeros(0, np.int64)
    by_gid = np.zeros(total + 1, np.float32)
    by_gid[flat] = allscores[1:]
    score[:] = by_gid[survivors]
    with np.errstate(invalid="ignore", divide="ignore"):
        return CellTable(np.arange(1, n + 1), sy[1:] / area[1:], sx[1:] / area[1:], area[1:], score)


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def segment_blocks(
    client: Any,
    image: Any,
    out_dir: Path,
    name: str,
    *,
    model: str,
    device: str = "auto",
    diameter: float | str | None = None,
    channels: Sequence[int | str] | None = None,
    channel_names: Sequence[str] | None = None,
    block_size: int = 4096,
    tile_size: int = 1024,
    augment: bool = False,
    overlaps: str = "score",
    threshold: float = 0.5,
    min_area: int = 8,
    min_fragment_fraction: float = 0.25,
    overwrite: bool = False,
    meta: dict | None = None,
) -> dict[str, Path]:
    """Segment one large image on a cluster: ``<name>.ome.zarr`` (labels), ``<name>.csv``, ``<name>.json``.

    The image is normalised with percentiles of the whole image (read
    streaming, here), rescaled by the cell diameter (given, the model's
    training diameter, or estimated on a central crop of at most 2048 x 2048
    pixels), then segmented in blocks (module docstring). Pass 1 results are
    kept in ``out_dir/.<name>.blocks/`` until the outputs are written, so a
    rerun after a crash segments only the missing blocks.

    Parameters
    ----------
    client : distributed.Client or None
        None runs every block in this process.
    image : (C, H, W) or (H, W) array-like
        Sliceable without reading it whole (:class:`~lociseg.io.LazyImage`, zarr).
    out_dir : Path
    name : str
        Base name of the outputs.
    model, device : str
        What each worker loads (once).
    diameter, channels, channel_names, tile_size, augment, overlaps, threshold
        As in :meth:`~lociseg.predict.Segmenter.segment`.
    min_area, min_fragment_fraction
        Paster rules; ``min_area`` at model scale, as in ``segment``.
    block_size : int
        Block side in input pixels (a multiple of 64); also the stored chunk side.
    overwrite : bool
        Replace existing outputs.
    meta : dict, optional
        Extra entries for the sidecar (e.g. the input path).

    Returns
    -------
    dict
        ``{"labels": .ome.zarr, "table": .csv, "meta": .json}``.
    """
    if block_size < 256 or block_size % MIN_CHUNK:
        raise ConfigError(f"--block-size must be a multiple of {MIN_CHUNK}, at least 256, got {block_size}")
    paths = {"labels": out_dir / f"{name}.ome.zarr", "table": out_dir / f"{name}.csv", "meta": out_dir / f"{name}.json"}
    if not overwrite:  # before any work, as for the files of one image
        for p in paths.values():
            if p.exists():
                raise InputError(f"outputs exist ({p.name}); use --overwrite to replace them or --skip-existing")
    seg = load_model(model, device=device)  # here too: the channel choice, percentiles, scale and halo need it
    img = seg.select_channels(image, channels, channel_names)
    shape = tuple(int(n) for n in img.shape[-2:])
    bounds = seg.percentiles(img)
    estimated = diameter is None
    if diameter == "train":
        if seg.train_diameter is None:
            raise ConfigError(f"model {model} records no training diameter; give the diameter in px")
        diameter = seg.train_diameter
    elif diameter is None:
        found = seg.estimate_scale(img, bounds).diameter  # one pass with a size model, else the ladder
        diameter = float(found) if math.isfinite(found) else float(seg.train_diameter or seg.spec.target_diameter)
    factor = seg.scale_factor(float(diameter))
    overlap, seg_align = seg.default_overlap(), seg.pad_multiple
    halo = int(math.ceil(overlap / factor))
    model_shape = scaled_shape(shape, factor)
    area_scale = (shape[0] / model_shape[0]) * (shape[1] / model_shape[1])
    rules = dict(
        threshold=threshold,
        min_area=max(1, int(round(min_area * area_scale))),
        min_fragment_fraction=min_fragment_fraction,
        overlaps=overlaps,
    )
    settings = dict(tile_size=tile_size, overlap=overlap, augment=augment, **rules)
    del seg
    if overwrite and paths["meta"].exists():
        paths["meta"].unlink()  # until the new sidecar is in place, the set is incomplete
    blocks = tile_blocks(shape, factor, tile_size, overlap, seg_align, block_size)
    record = dict(
        model=str(model),
        shape=list(shape),
        bounds=bounds.ravel().tolist(),
        factor=factor,
        block_size=block_size,
        halo=halo,
        settings=settings,
        version=__version__,
    )
    scratch = out_dir / f".{name}.blocks"
    key = _settings_key(record)
    if scratch.exists() and not (scratch / f"settings-{key}.json").exists():
        shutil.rmtree(scratch)  # another image or other settings under this name: start again
    scratch.mkdir(exist_ok=True)
    atomic_write(scratch / f"settings-{key}.json", json.dumps(record, default=str), overwrite=True)
    clock = [time.perf_counter()]
    _map(
        client,
        segment_block,
        [(img, b, scratch) for b in blocks],
        model=model,
        device=device,
        bounds=bounds,
        factor=factor,
        settings=settings,
    )
    scores = [block_done(scratch, b.index) for b in blocks]
    clock.append(time.perf_counter())
    if any(s is None for s in scores):
        raise RuntimeError("a block finished without its result in the scratch folder")

    made: dict[str, CellTable] = {}

    def write_store(tmp: Path) -> None:
        made["table"] = stitch_blocks(
            client,
            blocks,
            scratch,
            tmp,
            shape,
            halo,
            scores,
            chunk_size=block_size,
            min_area=rules["min_area"],
            min_fragment_fraction=min_fragment_fraction,
            image=img,
            channel_names=[str(c) for c in channels] if channels else None,
        )

    atomic_write(paths["labels"], write_store, overwrite=overwrite)
    clock.append(time.perf_counter())
    table = made["table"]
    atomic_write(paths["table"], table.to_csv, overwrite=overwrite)

    table.meta = {
        "model": str(model),
        "diameter_used": float(diameter),
        "diameter_estimated": bool(estimated),
        "scale_factor": factor,
        "image_shape": list(shape),
        "block_size": block_size,
        "halo": halo,
        "blocks": len(blocks),
        **{k: v for k, v in settings.items() if k != "min_area"},
        "cells": len(table),
        # wall seconds of pass 1 (segment) and passes 2-3 (resolve, write), on the cluster
        "seconds": {"segment": round(clock[1] - clock[0], 1), "stitch": round(clock[2] - clock[1], 1)},
    }
    files = {
        paths["table"].name: {"size": paths["table"].stat().st_size, "sha256": sha256_file(paths["table"])},
        paths["labels"].name: folder_record(paths["labels"]),
    }
    info = {
        **table.meta,
        **(meta or {}),
        "lociseg_version": __version__,
        "columns": list(TABLE_COLUMNS),
        "outputs": files,
    }
    atomic_write(paths["meta"], json.dumps(info, indent=1, default=str) + "\n", overwrite=overwrite)
    shutil.rmtree(scratch, ignore_errors=True)
    return paths


__all__ = [
    "Block",
    "block_grid",
    "block_done",
    "global_ids",
    "pyramid_levels",
    "resolve_block",
    "save_block",
    "segment_block",
    "segment_blocks",
    "stitch_blocks",
    "write_block",
]

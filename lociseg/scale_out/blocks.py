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

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .. import __version__
from ..errors import ConfigError, InputError
from ..io import label_dtype
from ..io.files import atomic_write, sha256_file
from ..predict.outputs import OLD_SIDECAR, SIDECAR, folder_record, remove_sidecars
from ..predict.paste import trim_cell
from ..predict.scale_search import HIGH_SCORE
from ..predict.table import TABLE_COLUMNS, CellTable
from .cluster import cached_segmenter, release_memory
from .grid import Block, block_grid, blocks_meeting, grow, intersect, within
from .plan import Plan, make_plan, settings_key
from .scratch import block_done, final_path, labels_path, save_block
from .store import MIN_CHUNK, create_store, pyramid_levels, write_block

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
    own = np.load(labels_path(scratch, block.index))
    lut = luts[block.index]
    gid = lut[own]
    claim = np.where(gid > 0, gid, top)
    for other in near:
        meet = intersect(block.ext, other.ext) if other.index != block.index else None
        if meet is None:
            continue
        part = luts[other.index][np.load(labels_path(scratch, other.index), mmap_mode="r")[within(meet, other.ext)]]
        sub = claim[within(meet, block.ext)]
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
    atomic_write(final_path(scratch, block.index), lambda p: np.save(p, final), overwrite=True)
    del own, gid
    release_memory()
    return np.asarray(sorted(kept), np.int64)


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
    bounds: np.ndarray | None = None,
    name: str = "image",
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
    bounds : ndarray, optional
        The image's normalisation percentiles, (2, C, 1, 1): the channels' display windows.
    name : str
        The image's name in the store's metadata.

    Returns
    -------
    CellTable
        Cells 1..N by descending score (centroids in image pixels).
    """
    luts = global_ids(scores)
    block_size = chunk_size or int(max(b.core[1] - b.core[0] for b in blocks))
    near = [[o.index for o in blocks_meeting(b.ext, blocks)] for b in blocks]
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
    create_store(store, shape, block_size, levels, dtype, image, channel_names, bounds, name)
    if client is not None:
        [renumber] = client.scatter([renumber], broadcast=True)
    stats = _map(
        client,
        write_block,
        [
            (scratch, c.core, blocks_meeting(grow(c.core, halo, shape), blocks))
            for c in block_grid(shape, block_size, 0)
        ],
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


def _segment_all(client: Any, plan: Plan, scratch: Path, model: str, device: str) -> list[np.ndarray]:
    """Pass 1 on every block not done yet; each block's cell scores."""
    _map(
        client,
        segment_block,
        [(plan.img, b, scratch) for b in plan.blocks],
        model=model,
        device=device,
        bounds=plan.bounds,
        factor=plan.factor,
        settings=plan.settings,
    )
    scores = [block_done(scratch, b.index) for b in plan.blocks]
    if any(s is None for s in scores):
        raise RuntimeError("a block finished without its result in the scratch folder")
    return scores


def _stitch(
    client: Any,
    plan: Plan,
    scratch: Path,
    scores: list[np.ndarray],
    store: Path,
    min_fragment_fraction: float,
    overwrite: bool,
) -> CellTable:
    """Passes 2 and 3 into ``store``, replaced atomically; the cell table."""
    made: dict[str, CellTable] = {}

    def write_store(tmp: Path) -> None:
        made["table"] = stitch_blocks(
            client,
            plan.blocks,
            scratch,
            tmp,
            plan.shape,
            plan.halo,
            scores,
            chunk_size=plan.block_size,
            min_area=plan.settings["min_area"],
            min_fragment_fraction=min_fragment_fraction,
            image=plan.img,
            channel_names=plan.channel_names,
            bounds=plan.bounds,
            name=store.name.removesuffix(".ome.zarr"),
        )

    atomic_write(store, write_store, overwrite=overwrite)
    return made["table"]


def _open_scratch(scratch: Path, record: dict[str, Any]) -> Path:
    """The scratch folder of this run; one left by another image or other settings is cleared first."""
    key = settings_key(record)
    if scratch.exists() and not (scratch / f"settings-{key}.json").exists():
        shutil.rmtree(scratch)  # another image or other settings under this name: start again
    scratch.mkdir(exist_ok=True)
    atomic_write(scratch / f"settings-{key}.json", json.dumps(record, default=str), overwrite=True)
    return scratch


def _write_sidecar(paths: dict[str, Path], table: CellTable, meta: dict | None, overwrite: bool) -> None:
    """The ``.lociseg.json`` sidecar, last: the table's meta, ``meta``, and the size and hash of the outputs it completes."""
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
    """Segment one large image on a cluster: ``<name>.ome.zarr`` (labels), ``<name>.csv``, ``<name>.lociseg.json``.

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
        ``{"labels": .ome.zarr, "table": .csv, "meta": .lociseg.json}``.
    """
    if block_size < 256 or block_size % MIN_CHUNK:
        raise ConfigError(f"--block-size must be a multiple of {MIN_CHUNK}, at least 256, got {block_size}")
    paths = {
        "labels": out_dir / f"{name}.ome.zarr",
        "table": out_dir / f"{name}.csv",
        "meta": out_dir / f"{name}{SIDECAR}",
    }
    if not overwrite:  # before any work, as for the files of one image
        for p in (*paths.values(), out_dir / f"{name}{OLD_SIDECAR}"):
            if p.exists():
                raise InputError(f"outputs exist ({p.name}); use --overwrite to replace them or --skip-existing")
    plan = make_plan(
        image,
        model,
        device,
        diameter=diameter,
        channels=channels,
        channel_names=channel_names,
        block_size=block_size,
        tile_size=tile_size,
        augment=augment,
        overlaps=overlaps,
        threshold=threshold,
        min_area=min_area,
        min_fragment_fraction=min_fragment_fraction,
    )
    if overwrite:
        remove_sidecars(out_dir, name)  # until the new sidecar is in place, the set is incomplete
    scratch = _open_scratch(out_dir / f".{name}.blocks", plan.record())
    clock = [time.perf_counter()]
    scores = _segment_all(client, plan, scratch, model, device)
    clock.append(time.perf_counter())
    table = _stitch(client, plan, scratch, scores, paths["labels"], min_fragment_fraction, overwrite)
    clock.append(time.perf_counter())
    atomic_write(paths["table"], table.to_csv, overwrite=overwrite)
    high = float(np.mean(table.score >= HIGH_SCORE)) if len(table) else 0.0
    table.meta = plan.meta(len(table), high, clock)
    _write_sidecar(paths, table, meta, overwrite)
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

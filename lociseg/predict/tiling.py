"""Prediction on images larger than one tile.

The image is cut into overlapping tiles. Each tile owns a *core*: the tile
minus half the overlap on every side it shares with a neighbour, so the cores
partition the image. An instance predicted in a tile is kept only when its
location lies in that tile's core, so every cell comes out exactly once, and
since a kept location is at least half the overlap away from the tile's
inner edges, a cell whose window fits in the overlap is never cut at a seam.
:func:`tile_instances` yields each tile's kept instances as it goes, so they
can be pasted at once (:class:`~lociseg.predict.paste.StreamingPaste`)
instead of being kept to the end (:func:`predict_tiled`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..structures import Instances


@dataclass(frozen=True)
class Tile:
    """One tile of an image.

    Attributes
    ----------
    y0, y1, x0, x1 : int
        Extent of the tile in image pixels (end exclusive).
    core : (float, float, float, float)
        ``(cy0, cy1, cx0, cx1)`` in image coordinates: the tile keeps
        locations with ``cy0 <= y < cy1`` and ``cx0 <= x < cx1``; the
        bounds on the image border are infinite so nothing is lost there.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    core: tuple[float, float, float, float]


def axis_tiles(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int, float, float]]:
    """(start, end, core start, core end) of the tiles covering one axis.

    Starts are multiples of ``align``: a network that downsamples by 32 then
    sees every tile on the same pixel grid as the whole image, so its
    features (and masks) agree away from the tile edges. The tiles are as
    many as tiles of ``tile`` px need, and each is made as small as covering
    the axis with them allows: an axis a little longer than ``tile`` gets
    two tiles of about half the length, not two of ``tile`` (which computed
    up to twice the pixels). The last tile starts at the last aligned
    position and runs to the end of the axis (up to ``align - 1`` pixels
    longer than the others, never longer than ``tile + align - 1``).
    """
    if length <= tile:
        return [(0, length, -np.inf, np.inf)]
    n = math.ceil((length - overlap) / max(1, tile - overlap))
    size = min(tile, -(-math.ceil((length + (n - 1) * overlap) / n) // align) * align)
    step = max(align, (size - overlap) // align * align)
    last = (length - size) // align * align
    starts = list(range(0, last, step)) + [last]
    ends = [s + size for s in starts[:-1]] + [length]
    # the last tile's overlap with the previous one may be larger than
    # `overlap`; seams go to the middle of each overlap
    seams = [(b + e) / 2 for e, b in zip(ends[:-1], starts[1:])]
    bounds = [-np.inf, *seams, np.inf]
    return [(s, e, bounds[i], bounds[i + 1]) for i, (s, e) in enumerate(zip(starts, ends))]


def iter_tiles(
    shape: tuple[int, int], tile_size: int | tuple[int, int], overlap: int, align: int = 1
) -> Iterator[Tile]:
    """Yield the overlapping tiles of an image of ``shape`` (H, W), row by row.

    Parameters
    ----------
    shape : (H, W)
    tile_size : int or (int, int)
        Tile height and width; an image side not longer than the tile is one tile.
    overlap : int
        Minimum overlap of neighbouring tiles in pixels (``< tile_size``).
    align : int, optional
        Tile starts are multiples of this (the network's size multiple).

    Yields
    ------
    Tile
    """
    th, tw = (tile_size, tile_size) if np.isscalar(tile_size) else tile_size
    if overlap < 0 or overlap >= min(th, tw):
        raise ValueError(f"overlap must be in [0, tile size), got {overlap} for tile {th}x{tw}")
    if align < 1 or min(th, tw) - overlap < align:
        raise ValueError(f"tile size minus overlap must be at least align={align}")
    for y, y1, cy0, cy1 in axis_tiles(int(shape[0]), int(th), overlap, align):
        for x, x1, cx0, cx1 in axis_tiles(int(shape[1]), int(tw), overlap, align):
            yield Tile(y, y1, x, x1, (cy0, cy1, cx0, cx1))


def n_tiles(shape: tuple[int, int], tile_size: int | tuple[int, int], overlap: int, align: int = 1) -> int:
    """Number of tiles :func:`iter_tiles` yields."""
    th, tw = (tile_size, tile_size) if np.isscalar(tile_size) else tile_size
    return len(axis_tiles(int(shape[0]), int(th), overlap, align)) * len(
        axis_tiles(int(shape[1]), int(tw), overlap, align)
    )


def pad_windows(instances: Instances, window: tuple[int, int]) -> Instances:
    """Enlarge every mask window to ``window`` (h, w), keeping masks in place.

    Models whose window size depends on the image (e.g. the largest object)
    give windows of different sizes per tile; :meth:`Instances.concatenate`
    needs one size.
    """
    h, w = instances.masks.shape[1:]
    H, W = int(window[0]), int(window[1])
    if (h, w) == (H, W):
        return instances
    if h > H or w > W:
        raise ValueError(f"cannot shrink windows {h}x{w} to {H}x{W}")
    py, px = (H - h) // 2, (W - w) // 2
    masks = np.zeros((len(instances), H, W), np.float32)
    masks[:, py : py + h, px : px + w] = instances.masks
    origins = np.asarray(instances.origins, np.int64) - np.array([py, px], np.int64)
    return Instances(instances.locations, instances.scores, masks, origins)


def concatenate_instances(parts: list[Instances]) -> Instances:
    """:meth:`Instances.concatenate` that first pads windows to a common size."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Instances.empty()
    H = max(p.masks.shape[1] for p in parts)
    W = max(p.masks.shape[2] for p in parts)
    return Instances.concatenate([pad_windows(p, (H, W)) for p in parts])


def tile_instances(
    predict_fn: Callable[[np.ndarray], Instances],
    image: np.ndarray,
    *,
    tile_size: int = 1024,
    overlap: int = 128,
    align: int = 1,
    progress: bool | None = False,
    region: tuple[int, int, int, int] | None = None,
) -> Iterator[Instances]:
    """Predict an image tile by tile and yield each tile's kept instances as they come.

    Only one tile is read and predicted at a time, and nothing is kept
    between tiles: paste them as they come
    (:class:`~lociseg.predict.paste.StreamingPaste`) or collect them
    (:func:`predict_tiled`).

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(tile) -> Instances`` on a (C, h, w) tile, in tile coordinates.
    image : (C, H, W) array
        Already at model scale (normalising may be left to ``predict_fn``);
        only NumPy-style slicing ``image[..., y0:y1, x0:x1]`` is used, so a
        lazily read or rescaled image works.
    tile_size : int, optional
        Tile side in pixels. An image that fits in one tile is predicted whole.
    overlap : int, optional
        Minimum overlap of neighbouring tiles; must be larger than the mask
        window of the model so that cells at the seams stay whole.
    align : int, optional
        Tile starts are multiples of this; pass the network's size multiple
        (32 for LACSS) so tiles see the image on the same grid as a whole-image pass.
    progress : bool or None, optional
        Show a tqdm bar over tiles (None: only on a terminal).
    region : (y0, y1, x0, x1), optional
        Tile only this window of ``image`` (one block of a larger image), as
        if it were the whole image; pass starts that are multiples of
        ``align`` so the tiles stay on the whole image's grid.

    Yields
    ------
    Instances
        One tile's instances whose location lies in its core, in image
        coordinates (tiles without any are skipped); every cell comes once.
    """
    ry, rx = (0, 0) if region is None else (int(region[0]), int(region[2]))
    shape = image.shape[-2:] if region is None else (region[1] - region[0], region[3] - region[2])
    if shape[0] <= tile_size and shape[1] <= tile_size:
        inst = predict_fn(image[..., ry : ry + shape[0], rx : rx + shape[1]])
        if len(inst):
            yield inst.shift(ry, rx)
        return
    from tqdm.auto import tqdm

    total = n_tiles(shape, tile_size, overlap, align)
    with tqdm(
        total=total, desc="tiles", unit="tile", disable=None if progress is None else not progress, leave=False
    ) as bar:
        for t in iter_tiles(shape, tile_size, overlap, align):
            inst = predict_fn(image[..., ry + t.y0 : ry + t.y1, rx + t.x0 : rx + t.x1])
            bar.update(1)
            if not len(inst):
                continue
            cy0, cy1, cx0, cx1 = t.core
            loc = np.asarray(inst.locations, np.float64)
            y, x = loc[:, 0] + t.y0, loc[:, 1] + t.x0
            keep = (y >= cy0) & (y < cy1) & (x >= cx0) & (x < cx1)
            if keep.any():
                yield inst.select(keep).shift(ry + t.y0, rx + t.x0)


def predict_tiled(predict_fn: Callable[[np.ndarray], Instances], image: np.ndarray, **kwargs: Any) -> Instances:
    """Predict instances on an image of any size, tile by tile, and return them all.

    Arguments as :func:`tile_instances` (``tile_size=1024``, ``overlap=128``,
    ``align=1``, ``progress=False``).

    Returns
    -------
    Instances
        In image coordinates, each cell once. All tiles' instances are kept
        (about 125 KB per cell for LACSS at the input scale); for large
        images paste them as they come instead
        (:meth:`lociseg.predict.api.Segmenter.paste_tiles`).
    """
    return concatenate_instances(list(tile_instances(predict_fn, image, **kwargs)))

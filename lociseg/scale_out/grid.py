"""The blocks of a large image: a regular grid, or groups of whole tiles of the single-process tiling."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..predict.tiling import axis_tiles
from ..transforms import scaled_shape

#: (y0, y1, x0, x1) in pixels.
Box = tuple[int, int, int, int]


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
        step = tiles[1][0] - tiles[0][0] if len(tiles) > 1 else tile_size  # the tiling's stride
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


def intersect(a: Box, b: Box) -> Box | None:
    """The intersection of two boxes, or None."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def within(box: Box, origin: Box) -> tuple[slice, slice]:
    """Slices of ``box`` in the coordinates of an array that starts at ``origin``'s corner."""
    return slice(box[0] - origin[0], box[1] - origin[0]), slice(box[2] - origin[2], box[3] - origin[2])


def grow(box: Box, by: int, shape: tuple[int, int]) -> Box:
    """``box`` grown by ``by`` on every side, clipped to an image of ``shape``."""
    return (max(box[0] - by, 0), min(box[1] + by, shape[0]), max(box[2] - by, 0), min(box[3] + by, shape[1]))


def blocks_meeting(box: Box, blocks: Sequence[Block]) -> list[Block]:
    """Blocks whose extent meets ``box``."""
    return [b for b in blocks if intersect(box, b.ext) is not None]

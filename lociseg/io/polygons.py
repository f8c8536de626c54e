"""Exact cell outlines traced along pixel edges.

Coordinates are (x, y) with pixel ``(row, col)`` covering the square
``[col, col + 1] x [row, row + 1]`` (the QuPath, ImageJ and shapely
convention), so the polygon area of an outline equals the cell's pixel count
and rasterising it (pixel centres inside) gives back the mask exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CellPolygon", "mask_outlines", "label_outlines", "polygon_area"]


@dataclass
class CellPolygon:
    """One 4-connected piece of a cell: an outer ring and its holes.

    Attributes
    ----------
    exterior : (N, 2) float ndarray
        Outer ring, (x, y) corners, not repeating the first vertex.
    holes : list of (M, 2) float ndarray
        Inner rings (background enclosed by the cell).
    """

    exterior: np.ndarray
    holes: list[np.ndarray]

    @property
    def area(self) -> float:
        """Pixel count of the piece (outer area minus holes)."""
        return abs(polygon_area(self.exterior)) - sum(abs(polygon_area(h)) for h in self.holes)


def polygon_area(ring: np.ndarray) -> float:
    """Signed shoelace area of an (x, y) ring; positive when clockwise on screen (y down)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed boundary edges (start, end vertex ids, owning pixel) of a padded mask.

    Each foreground pixel's exposed sides run clockwise on screen, so an
    outer boundary comes out clockwise and a hole anticlockwise.
    """
    h, w = mask.shape
    W = w + 1  # vertex grid is (h + 1) x (w + 1)
    starts, ends, pix = [], [], []
    # (neighbour offset, start corner, end corner) with corners as (dy, dx)
    sides = (((-1, 0), (0, 0), (0, 1)), ((0, 1), (0, 1), (1, 1)), ((1, 0), (1, 1), (1, 0)), ((0, -1), (1, 0), (0, 0)))
    for (dy, dx), (sy, sx), (ey, ex) in sides:
        nb = np.roll(mask, (-dy, -dx), axis=(0, 1))  # mask is padded, so wrap-around sees background
        r, c = np.nonzero(mask & ~nb)
        starts.append((r + sy) * W + c + sx)
        ends.append((r + ey) * W + c + ex)
        pix.append(r * w + c)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(pix)


def _split_touching(verts: list[int]) -> list[list[int]]:
    """Cut a closed vertex loop wherever it revisits a vertex, giving simple loops."""
    loops, stack, where = [], [], {}
    for v in verts:
        if v in where:
            i = where[v]
            loop = stack[i:]
            for u in loop:
                del where[u]
            del stack[i:]
            loops.append(loop)
        where[v] = len(stack)
        stack.append(v)
    loops.append(stack)
    return [lp for lp in loops if len(lp) >= 4]


def _rings(mask: np.ndarray, simple: bool = True) -> list[np.ndarray]:
    """All boundary rings of a binary mask (padded here), as (x, y) corner arrays.

    Where two pixels of the mask touch only at a corner, tracing keeps
    following the same pixel (the ImageJ way: pieces touching at a corner
    stay apart). Such a ring may pass through that corner twice; ``simple``
    cuts it there into simple rings (a hole touching the exterior, or two
    holes touching each other, both valid OGC polygons as shapely, JTS and
    QuPath require).
    """
    m = np.pad(np.asarray(mask, bool), 1)
    W = m.shape[1] + 1
    s, e, p = _edges(m)
    out: dict[int, list[int]] = {}
    for i, v in enumerate(s.tolist()):
        out.setdefault(v, []).append(i)
    used = np.zeros(len(s), bool)
    rings = []
    for first in range(len(s)):
        if used[first]:
            continue
        verts, cur = [], first
        while not used[cur]:
            used[cur] = True
            verts.append(int(s[cur]))
            cands = [j for j in out[e[cur]] if not used[j]]
            if not cands:
                break
            if len(cands) > 1:
                # corner contact: stay on the same pixel
                cands = [j for j in cands if p[j] == p[cur]] or cands
            cur = cands[0]
        for loop in _split_touching(verts) if simple else [verts]:
            v = np.asarray(loop)
            xy = np.stack([v % W, v // W], 1).astype(np.float64) - 1.0  # undo the padding
            # keep corners only (drop vertices where the direction does not change)
            d_in = xy - np.roll(xy, 1, axis=0)
            d_out = np.roll(xy, -1, axis=0) - xy
            rings.append(xy[d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0])
    return rings


def mask_outlines(mask: np.ndarray, *, simple: bool = True) -> list[CellPolygon]:
    """Outlines of a binary mask, one :class:`CellPolygon` per 4-connected piece.

    Parameters
    ----------
    mask : (H, W) bool ndarray
    simple : bool
        True: every ring is simple, background pockets that reach the outside
        through a pixel corner become holes touching the exterior at that
        corner (valid OGC polygons). False: the exterior is the single traced
        boundary, which may touch itself at corners (ImageJ traced ROIs,
        which have no holes).

    Returns
    -------
    list of CellPolygon
        Largest piece first.
    """
    from skimage.measure import label

    mask = np.asarray(mask, bool)
    pieces = label(mask, connectivity=1)
    out = []
    for k in range(1, int(pieces.max()) + 1):
        rings = _rings(pieces == k, simple=simple)
        areas = [polygon_area(r) for r in rings]
        # A 4-connected piece has exactly one clockwise (outer) ring.
        outer = int(np.argmax(areas))
        out.append(CellPolygon(rings[outer], [r for i, r in enumerate(rings) if i != outer]))
    out.sort(key=lambda c: -c.area)
    return out


def label_outlines(labels: np.ndarray, *, simple: bool = True) -> dict[int, list[CellPolygon]]:
    """Outlines of every cell of a label image.

    Parameters
    ----------
    labels : (H, W) int ndarray
        0 is background.
    simple : bool
        See :func:`mask_outlines`.

    Returns
    -------
    dict
        Label value -> its pieces (:func:`mask_outlines`), in image coordinates,
        for the labels present, in increasing order.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    out: dict[int, list[CellPolygon]] = {}
    for i, sl in enumerate(ndi.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if sl is None:
            continue
        off = np.array([sl[1].start, sl[0].start], np.float64)
        pieces = mask_outlines(labels[sl] == i, simple=simple)
        out[i] = [CellPolygon(c.exterior + off, [h + off for h in c.holes]) for c in pieces]
    return out

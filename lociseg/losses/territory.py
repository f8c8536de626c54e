"""The territory prior of the weak mask losses: each instance's mask should stay on its own side of a border.

The borders are the bisectors between neighbouring points (:func:`territory_map`)
or the borders of machine-made cells (:func:`cells_territory_map`);
:func:`territory_loss` charges mask mass beyond them.
"""

from __future__ import annotations

import torch

from ..ops.windows import gather_windows
from .weak import probs_and_penalty

__all__ = ["territory_map", "cells_territory_map", "territory_loss"]


def territory_map(
    origins: torch.Tensor,
    window: tuple[int, int],
    points: torch.Tensor,
    owners: torch.Tensor,
    *,
    margin: float,
    neighbours: int = 8,
) -> torch.Tensor:
    """How far each window pixel lies inside another cell's Voronoi territory.

    For instance ``i`` (annotated at ``points[owners[i]]``) and a window pixel
    ``x``, with ``d_i`` the distance from ``x`` to the own point and ``d_o`` to
    the nearest other point, ``(d_i - d_o) / 2`` is (on the line joining the
    two points exactly, elsewhere nearly) how far ``x`` lies past their
    perpendicular bisector. The map is 0 up to ``margin`` px past the
    bisector and rises linearly to 1 at ``2 * margin``: a pixel well inside a
    neighbour's territory is "background" for ``i``, while the border itself
    stays free to move ``margin`` px either way, since nuclei are not at the
    centres of their cells.

    Parameters
    ----------
    origins : (N, 2) int tensor
        Window top-left corners (y, x).
    window : (h, w)
        Window size.
    points : (P, 2) tensor
        All annotated points (y, x) of the image.
    owners : (N,) long tensor
        Index into ``points`` of each instance's own point.
    margin : float
        Free band (px) on either side of the bisector; > 0.
    neighbours : int
        Only the nearest this many other points count (windows span a few
        cells, so farther points rarely claim a window pixel first).

    Returns
    -------
    (N, h, w) tensor in [0, 1], no gradient.
    """
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    n = origins.shape[0]
    h, w = window
    pts = points.detach().to(torch.float32).reshape(-1, 2)
    dev = origins.device
    if n == 0 or len(pts) < 2:
        return torch.zeros((n, h, w), device=dev)
    pts = pts.to(dev)
    own = pts[owners.long()]  # (N, 2)
    d = torch.cdist(own, pts)  # (N, P)
    d[torch.arange(n, device=dev), owners.long()] = float("inf")
    k = min(neighbours, len(pts) - 1)
    others = pts[d.topk(k, dim=1, largest=False).indices]  # (N, k, 2)
    yy = origins[:, 0, None, None].float() + torch.arange(h, device=dev)[None, :, None]
    xx = origins[:, 1, None, None].float() + torch.arange(w, device=dev)[None, None, :]
    d_own = torch.hypot(yy - own[:, 0, None, None], xx - own[:, 1, None, None])
    d_oth = torch.hypot(yy[:, None] - others[..., 0, None, None], xx[:, None] - others[..., 1, None, None]).amin(1)
    past = (d_own - d_oth) / 2
    return ((past - margin) / margin).clamp(0, 1)


def nearest_point(origins: torch.Tensor, window: tuple[int, int], points: torch.Tensor) -> torch.Tensor:
    """Index of the point nearest each window's centre (all 0 without points)."""
    if len(points) == 0:
        return torch.zeros(len(origins), dtype=torch.long, device=origins.device)
    centres = origins.float() + torch.tensor(window, dtype=torch.float32, device=origins.device) / 2
    return torch.cdist(centres, points.float().reshape(-1, 2).to(origins.device)).argmin(1)


def cells_territory_map(
    origins: torch.Tensor,
    window: tuple[int, int],
    cells: torch.Tensor,
    depth: torch.Tensor,
    own: torch.Tensor,
    *,
    margin: float,
) -> torch.Tensor:
    """How far each window pixel lies inside another machine-made cell.

    The image-derived counterpart of :func:`territory_map`: the borders are
    those of a partition of the foreground into cells
    (:func:`lociseg.annotate.propagate_cells`, which follows nuclei shapes and
    cytoplasm edges) instead of the bisectors between points. For instance
    ``i`` with own cell ``own[i]``, a window pixel in another cell at
    ``depth`` px from that cell's border scores 0 up to ``margin`` and rises
    linearly to 1 at ``2 * margin``; pixels of the own cell, of background
    (label 0) and outside the image score 0, and so does every pixel for an
    instance whose point lies on no cell (``own`` 0).

    Parameters
    ----------
    origins : (N, 2) int tensor
        Window top-left corners (y, x).
    window : (h, w)
    cells : (H, W) int tensor
        Cell labels, 0 = background.
    depth : (H, W) float tensor
        Distance of each pixel to its cell's border
        (:func:`lociseg.train.data.border_depth`).
    own : (N,) int tensor
        Each instance's own cell label.
    margin : float
        Free band (px) past the border; > 0.

    Returns
    -------
    (N, h, w) tensor in [0, 1], no gradient.
    """
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    lab, inside = gather_windows(cells.long(), origins, window)
    dep, _ = gather_windows(depth.float(), origins, window)
    own = own.long().reshape(-1, 1, 1)
    other = inside & (lab > 0) & (lab != own) & (own > 0)
    return other.float() * ((dep - margin) / margin).clamp(0, 1)


def territory_loss(
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    territory: torch.Tensor,
    shape: tuple[int, int],
    *,
    valid: torch.Tensor | None = None,
    weight: float = 2.0,
    from_logits: bool = True,
) -> torch.Tensor:
    """Penalise a mask reaching deep into a neighbouring cell's territory.

    ``(1/N) sum_i sum_x y_i(x) * weight * T_i(x)`` with ``T_i`` a territory
    map in [0, 1]: :func:`territory_map` (bisectors between points) or
    :func:`cells_territory_map` (machine-made cells). The coverage, overlap
    and background terms of :func:`lacss_weak_loss` say *that* touching
    cells split the foreground, not *where*: one mask may take most of a
    shared clump. This term adds a prior on where the borders lie (within
    the map's free margin either way). ``weight`` 2 makes a pixel deep in
    another territory cost what a background pixel does. Window pixels
    outside the image or ``valid`` do not count.
    """
    n = mask_logits.shape[0]
    if n == 0:
        return mask_logits.sum() * 0.0
    y, _ = probs_and_penalty(mask_logits, from_logits)
    window = tuple(y.shape[-2:])
    H, W = shape
    v = torch.ones((H, W), dtype=y.dtype, device=y.device) if valid is None else valid.to(y.dtype)
    vw, inside = gather_windows(v, origins, window)
    return (y * vw * inside.to(y.dtype) * weight * territory.to(y.dtype)).sum() / n


def own_cells(points: torch.Tensor, owners: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Cell label under each instance's point (0 where the point lies on no cell)."""
    H, W = cells.shape[-2:]
    p = points.reshape(-1, 2)[owners.long()].round().long()
    return cells[p[:, 0].clamp(0, H - 1), p[:, 1].clamp(0, W - 1)]

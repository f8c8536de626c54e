"""Weak-supervision losses for per-location instance masks (LACSS).

The model predicts, for one image, N soft instance masks ``y_i`` in small
windows (``mask_logits`` (N, h, w), window top-left ``origins`` (N, 2) in
image pixels, possibly outside the image). These functions score them
against weak annotations only: a foreground map ``B`` (H, W) in [0, 1]
and/or the cell locations (points). All are pure, differentiable torch
functions of one image; the model sums them over the batch.

Window pixels that fall outside the image carry no annotation and are
ignored by every term (they neither cost nor earn anything).

Terms (all divided by the number of instances N, so the loss scale does not
grow with cell density):

``coverage``   (sum_x B(x) - sum_i sum_x y_i(x)) / N
``overlap``    (1/N) sum_i sum_x y_i(x) sum_{j != i} -log(1 - y_j(x))
``background`` (1/N) sum_i sum_x y_i(x) * 2 (1 - B(x))

Their sum is the LACSS weak loss (:func:`lacss_weak_loss`). Per pixel, the
gradient with respect to ``y_i`` is ``-1`` (grow) ``+ 2 (1 - B)`` (shrink on
background) ``+ sum_{j != i} -log(1 - y_j)`` (shrink where another instance
already claims the pixel), so masks fill the foreground and partition it.
``-log(1 - sigmoid(z))`` is computed as ``softplus(z)``, which is exact and
finite for any logit; probabilities given directly are clamped to
``[eps, 1 - eps]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..config import Config, bounded
from ..ops.windows import gather_windows, paste_soft, window_coords
from ..transforms import point_spacing
from .aux import aux_losses

__all__ = [
    "lacss_weak_loss",
    "points_mode_loss",
    "background_from_points",
    "size_loss",
    "territory_map",
    "cells_territory_map",
    "territory_loss",
    "warmup_weight",
    "WeakLossConfig",
    "weak_image_loss",
]

EPS = 1e-6
#: Point spacing (px) assumed for an image with fewer than 2 points.
DEFAULT_SPACING = 32.0


def _probs_and_penalty(mask_logits: torch.Tensor, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``y = sigmoid(z)`` and ``-log(1 - y)`` computed stably."""
    if from_logits:
        return torch.sigmoid(mask_logits), F.softplus(mask_logits)
    y = mask_logits.clamp(EPS, 1 - EPS)
    return y, -torch.log1p(-y)


def _overlap_term(
    y: torch.Tensor, pen: torch.Tensor, origins: torch.Tensor, shape, inside_w: torch.Tensor
) -> torch.Tensor:
    """sum_i sum_x y_i(x) sum_{j != i} -log(1 - y_j(x)) over in-image pixels (not divided by N)."""
    total_pen = paste_soft(pen * inside_w, origins, shape)
    others, _ = gather_windows(total_pen, origins, tuple(y.shape[-2:]))
    others = (others - pen).clamp_min(0.0)  # remove own contribution; clamp float round-off
    return (y * others * inside_w).sum()


def lacss_weak_loss(
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    foreground: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    from_logits: bool = True,
    background_weight: float = 2.0,
) -> dict[str, torch.Tensor]:
    """LACSS weak loss of one image from a foreground map.

    With ``y_i`` the soft mask of instance i (pasted at its window) and ``B``
    the foreground::

        L = (sum B - sum_i y_i) / N
            + (1/N) sum_i y_i [ sum_{j != i} -log(1 - y_j) + 2 (1 - B) ]

    Parameters
    ----------
    mask_logits : (N, h, w) tensor
        Mask logits (or probabilities with ``from_logits=False``).
    origins : (N, 2) int tensor
        Window top-left corners (y, x) in image pixels.
    foreground : (H, W) tensor
        Foreground probability ``B`` in [0, 1].
    valid : (H, W) tensor, optional
        1 where pixels count, 0 for padding/ignored pixels.
    from_logits : bool
        Whether ``mask_logits`` are logits.
    background_weight : float
        The factor 2 in front of ``(1 - B)``; it must exceed 1 so that
        growing onto background costs more than the coverage term gains.

    Returns
    -------
    dict of scalar tensors
        ``coverage``, ``overlap``, ``background`` and their sum ``loss``.
        With N = 0 every term is 0 (still attached to the graph).
    """
    shape = tuple(foreground.shape[-2:])
    B = foreground.to(mask_logits.dtype).clamp(0, 1)
    v = torch.ones_like(B) if valid is None else valid.to(B.dtype)
    n = mask_logits.shape[0]
    zero = mask_logits.sum() * 0.0
    if n == 0:
        # No instance covers anything: the coverage deficit is the whole foreground.
        cov = (B * v).sum() + zero
        return {"coverage": cov, "overlap": zero, "background": zero, "loss": cov}
    y, pen = _probs_and_penalty(mask_logits, from_logits)
    window = tuple(y.shape[-2:])
    vw, inside = gather_windows(v, origins, window)
    inside_w = vw * inside.to(y.dtype)
    Bw, _ = gather_windows(B, origins, window)
    area = (y * inside_w).sum()
    coverage = ((B * v).sum() - area) / n
    overlap = _overlap_term(y, pen, origins, shape, inside_w) / n
    background = (y * inside_w * background_weight * (1 - Bw)).sum() / n
    return {"coverage": coverage, "overlap": overlap, "background": background, "loss": coverage + overlap + background}


def background_from_points(
    points: torch.Tensor | np.ndarray,
    shape: tuple[int, int],
    distance: float | None = None,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pixels far from every point: a background map for points-only training.

    Parameters
    ----------
    points : (N, 2) array
        Cell locations (y, x).
    shape : (H, W)
        Image size.
    distance : float, optional
        Pixels farther than this from the nearest point are background.
        Default: the point spacing (:func:`lociseg.transforms.point_spacing`), i.e. about one
        cell diameter from the nearest cell centre.

    Returns
    -------
    (H, W) float32 tensor
        1 on background, 0 elsewhere. Without points the whole image is
        background.
    """
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float32).reshape(-1, 2)
    H, W = shape
    if len(pts) == 0:
        return torch.ones((H, W), dtype=torch.float32, device=device)
    if distance is None:
        distance = point_spacing(pts, DEFAULT_SPACING)
    seeds = np.ones((H, W), bool)
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, H - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, W - 1)
    seeds[iy, ix] = False
    dist = ndi.distance_transform_edt(seeds)
    return torch.as_tensor(dist > distance, dtype=torch.float32, device=device)


def size_loss(
    mask_logits: torch.Tensor,
    origins: torch.Tensor | None = None,
    shape: tuple[int, int] | None = None,
    *,
    max_area: float,
    from_logits: bool = True,
) -> torch.Tensor:
    """Penalise masks much larger than the cells can be.

    ``(1/N) sum_i relu(A_i - A_max) / A_max`` with ``A_i = sum_x y_i(x)``
    (in-image pixels only when ``origins`` and ``shape`` are given). Zero for
    masks of plausible size, so it only acts against runaway growth. A sensible
    ``A_max`` is a few times the squared point spacing
    (``2 * point_spacing(points) ** 2``).
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0.0
    y = torch.sigmoid(mask_logits) if from_logits else mask_logits.clamp(0, 1)
    if origins is not None and shape is not None:
        _, _, inside = window_coords(origins, tuple(y.shape[-2:]), shape)
        y = y * inside.to(y.dtype)
    area = y.flatten(1).sum(1)
    return (F.relu(area - max_area) / max_area).mean()


def points_mode_loss(
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor | np.ndarray,
    shape: tuple[int, int],
    *,
    background: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    collaborator: torch.Tensor | None = None,
    min_area: float | None = None,
    background_distance: float | None = None,
    spacing: float | None = None,
    from_logits: bool = True,
) -> dict[str, torch.Tensor]:
    """Points-only weak loss (no foreground mask), after LACSS's 2021 unsupervised method.

    Terms, with ``G`` the background map (pixels farther than
    ``background_distance`` from every point, or the given ``background``)::

        overlap    = (1/N) sum_i sum_x y_i sum_{j != i} -log(1 - y_j)
        background = (1/N) sum_i sum_x y_i * 2 G
        small_area = (1/N) sum_i relu(A_min - A_i),  A_i = sum_x y_i

    ``spacing`` (px) is the cell scale behind the defaults (``A_min`` and the
    background distance); default: :func:`point_spacing` of ``points``. Pass
    the known cell diameter when ``points`` are a crop's few points, whose
    spacing says little about the cells.

    ``small_area`` replaces the coverage term of :func:`lacss_weak_loss`
    (which needs a foreground): a mask is pushed to grow until it holds
    ``A_min`` pixels (default ``pi/4 * spacing^2``, the disc whose diameter is
    the point spacing), and no further; overlap and background bound it. It
    is counted in pixels, not as a fraction of ``A_min``, so that below
    ``A_min`` each pixel earns 1, as in the coverage term: the background
    (2 per pixel) and overlap (``-log(1 - y_j)``) terms then decide where a
    mask stops. (Divided by ``A_min`` the growth pull is ~1/800 of the shrink
    pull per pixel and every mask collapses to empty.)

    Learned foreground collaborator (optional): pass ``collaborator``, the
    (H, W) logits of a small head predicting the foreground from the image
    (:class:`lociseg.models.aux.ForegroundHead`). Then two more terms:

    * ``collab_masks``: :func:`lacss_weak_loss` of the masks against
      ``sigmoid(collaborator)`` (detached), which restores the coverage term;
    * ``collab_fit``: binary cross entropy training the collaborator toward
      ``0`` on ``G``, toward ``1`` within ``spacing / 4`` of a point (the
      nucleus: certainly cell) and toward the union of the masks
      ``min(1, sum_i y_i)`` (detached) elsewhere, so the two networks teach
      each other, anchored on both sides by the points. (Anchored by ``G``
      alone, the collaborator learns "no foreground" while the masks are
      still small, and then pulls them to empty.)

    Returns
    -------
    dict of scalar tensors
        The terms above and their sum ``loss``.
    """
    H, W = shape
    dev = mask_logits.device
    if spacing is None:
        spacing = point_spacing(points, DEFAULT_SPACING)
    if background is None:
        background = background_from_points(points, shape, background_distance or spacing, device=dev)
    G = background.to(mask_logits.dtype)
    v = torch.ones((H, W), dtype=G.dtype, device=dev) if valid is None else valid.to(G.dtype)
    n = mask_logits.shape[0]
    zero = mask_logits.sum() * 0.0
    out: dict[str, torch.Tensor] = {}
    if n == 0:
        out.update(overlap=zero, background=zero, small_area=zero)
    else:
        y, pen = _probs_and_penalty(mask_logits, from_logits)
        window = tuple(y.shape[-2:])
        vw, inside = gather_windows(v, origins, window)
        inside_w = vw * inside.to(y.dtype)
        Gw, _ = gather_windows(G, origins, window)
        out["overlap"] = _overlap_term(y, pen, origins, shape, inside_w) / n
        out["background"] = (y * inside_w * 2.0 * Gw).sum() / n
        if min_area is None:
            min_area = math.pi / 4 * spacing**2
        area = (y * inside_w).flatten(1).sum(1)
        out["small_area"] = F.relu(min_area - area).mean()
    if collaborator is not None:
        B_hat = torch.sigmoid(collaborator.reshape(H, W))
        out["collab_masks"] = lacss_weak_loss(mask_logits, origins, B_hat.detach(), v, from_logits=from_logits)["loss"]
        if n:
            y_all = mask_logits.sigmoid() if from_logits else mask_logits.clamp(0, 1)
            union = paste_soft(y_all.detach(), origins, shape).clamp(0, 1)
        else:
            union = torch.zeros_like(G)
        seeds = 1 - background_from_points(points, shape, spacing / 4, device=dev).to(G.dtype)
        target = torch.maximum(union, seeds) * (1 - G)
        bce = F.binary_cross_entropy_with_logits(collaborator.reshape(H, W), target, reduction="none")
        out["collab_fit"] = (bce * v).sum() / v.sum().clamp_min(1.0)
    out["loss"] = sum(out.values())
    return out


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


def _nearest_point(origins: torch.Tensor, window: tuple[int, int], points: torch.Tensor) -> torch.Tensor:
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
    y, _ = _probs_and_penalty(mask_logits, from_logits)
    window = tuple(y.shape[-2:])
    H, W = shape
    v = torch.ones((H, W), dtype=y.dtype, device=y.device) if valid is None else valid.to(y.dtype)
    vw, inside = gather_windows(v, origins, window)
    return (y * vw * inside.to(y.dtype) * weight * territory.to(y.dtype)).sum() / n


def _own_cells(points: torch.Tensor, owners: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Cell label under each instance's point (0 where the point lies on no cell)."""
    H, W = cells.shape[-2:]
    p = points.reshape(-1, 2)[owners.long()].round().long()
    return cells[p[:, 0].clamp(0, H - 1), p[:, 1].clamp(0, W - 1)]


def warmup_weight(step: int, *, start: int = 0, ramp: int = 1000, final: float = 1.0) -> float:
    """Weight of a weak term at ``step``: 0 before ``start``, then a linear ramp to ``final`` over ``ramp`` steps.

    Weak terms on an untrained network mostly push masks to extremes
    (everything or nothing); ramping them in after the location head has
    settled avoids that early collapse.
    """
    if step < start:
        return 0.0
    if ramp <= 0:
        return float(final)
    return float(final) * min(1.0, (step - start + 1) / ramp)


# ---------------------------------------------------------------- combiner


@dataclass
class WeakLossConfig(Config):
    """Weights and schedule of the weak mask losses (a ``training.weak`` section).

    Attributes
    ----------
    weight : float
        Weight of the mask loss (after warm-up).
    warmup_start, warmup_steps : int
        The mask loss is off before ``warmup_start`` and ramps linearly to
        ``weight`` over ``warmup_steps`` (:func:`warmup_weight`).
    size_weight : float
        Weight of :func:`size_loss`; 0 turns it off.
    size_factor : float
        ``A_max = size_factor * point_spacing**2``.
    background_distance : float or None
        Points mode: background starts this far (px) from every point
        (None: one point spacing).
    background_source : {"points", "foreground"}
        Points mode: where the background map comes from: ``points``, the
        pixels farther than ``background_distance`` from every point;
        ``foreground``, the complement of the annotation's foreground (a
        graph cut of the cytoplasm stain, as the 2021 method had it).
    collaborator : bool
        Points mode: train a :class:`lociseg.models.aux.ForegroundHead` jointly.
        It is fitted from step 0; its pull on the masks ramps in over a second
        warm-up (from ``warmup_start + warmup_steps``), once the points terms
        have made masks worth imitating.
    aux_weight, aux_consistency_weight : float
        Weights of :func:`lociseg.losses.aux.aux_losses` (0: no aux network).
    territory_weight : float
        Weight of :func:`territory_loss` relative to the other mask terms; 0
        turns it off. It ramps in over a second warm-up (like the
        collaborator's pull), once masks have formed: it moves borders, it
        does not make masks.
    territory_margin : float
        Its free band on either side of the border, as a fraction of the
        cell scale (the training diameter).
    territory_source : {"points", "cells"}
        Where the borders of the territory prior lie: ``points``, the
        bisectors between neighbouring points (:func:`territory_map`);
        ``cells``, the borders of the annotation's machine-made cells
        (:func:`cells_territory_map`; needs annotations with cells).
    """

    weight: float = bounded(1.0, ge=0)
    warmup_start: int = bounded(0, ge=0)
    warmup_steps: int = bounded(500, ge=0)
    size_weight: float = bounded(0.1, ge=0)
    size_factor: float = bounded(2.0, gt=0)
    background_distance: float | None = bounded(None, ge=0)
    background_source: Literal["points", "foreground"] = "points"
    collaborator: bool = False
    aux_weight: float = bounded(0.0, ge=0)
    aux_consistency_weight: float = bounded(0.0, ge=0)
    territory_weight: float = bounded(0.0, ge=0)
    territory_margin: float = bounded(0.15, ge=0)
    territory_source: Literal["points", "cells"] = "points"


def weak_image_loss(
    cfg: WeakLossConfig,
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor,
    *,
    foreground: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    shape: tuple[int, int] | None = None,
    step: int = 0,
    collaborator: torch.Tensor | None = None,
    aux_pred: torch.Tensor | None = None,
    scale: float | None = None,
    owners: torch.Tensor | None = None,
    cells: torch.Tensor | None = None,
    cells_depth: torch.Tensor | None = None,
    mode: Literal["weak", "points"] = "weak",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total weak mask loss of one image, as configured: one call for a model's ``training_loss``.

    Parameters
    ----------
    cfg : WeakLossConfig
    mask_logits : (N, h, w) tensor
        Mask logits of the instances at the annotated points (or at the
        model's locations matched to them).
    origins : (N, 2) int tensor
        Window top-left corners (y, x) in image pixels.
    points : (P, 2) tensor
        Annotated points of the image (for the cell scale and points mode).
    foreground, valid : (H, W) tensors, optional
        ``foreground`` is required in ``weak`` mode.
    shape : (H, W), optional
        Image size when ``foreground`` is not given.
    step : int
        Training step (warm-up).
    collaborator : (H, W) tensor, optional
        :class:`~lociseg.models.aux.ForegroundHead` logits (points mode).
    aux_pred : (H, W) tensor, optional
        :class:`~lociseg.models.aux.AuxBoundaryNet` output.
    scale : float, optional
        Cell size in pixels (the training diameter) for the size terms and
        the points-mode background; default: the spacing of ``points``,
        which is unreliable on a crop holding only a few of them.
    owners : (N,) long tensor, optional
        Index into ``points`` of each instance's point (the territory term);
        default: the point nearest each window's centre.
    cells, cells_depth : (H, W) tensors, optional
        Machine-made cell labels and their :func:`~lociseg.train.data.border_depth`
        (territory term with ``territory_source`` "cells").
    mode : {"weak", "points"}
        ``weak``: points + foreground (:func:`lacss_weak_loss`); ``points``:
        points only (:func:`points_mode_loss`, optionally with the learned
        foreground collaborator).

    Returns
    -------
    loss : scalar tensor
    parts : dict of float
        Every term (unweighted) plus ``weak_weight`` for logging.
    """
    if shape is None:
        if foreground is None:
            raise ValueError("weak_image_loss needs foreground or shape")
        shape = tuple(foreground.shape[-2:])
    w = warmup_weight(step, start=cfg.warmup_start, ramp=cfg.warmup_steps, final=cfg.weight)
    spacing = point_spacing(points, DEFAULT_SPACING) if scale is None else scale
    if mode == "weak":
        if foreground is None:
            raise ValueError("mode 'weak' needs a foreground map (run 'lociseg annotate' or use mode 'points')")
        terms = lacss_weak_loss(mask_logits, origins, foreground, valid)
    elif mode == "points":
        background = None
        if cfg.background_source == "foreground":
            if foreground is None:
                raise ValueError("background_source 'foreground' needs a foreground map (run 'lociseg annotate')")
            background = 1 - foreground
        terms = points_mode_loss(
            mask_logits,
            origins,
            points,
            shape,
            background=background,
            valid=valid,
            collaborator=collaborator if cfg.collaborator else None,
            background_distance=cfg.background_distance,
            spacing=spacing,
        )
    else:
        raise ValueError(f"unknown weak mode {mode!r}")
    parts = {k: float(v.detach()) for k, v in terms.items() if k != "loss"}
    collab = ("collab_fit", "collab_masks")
    loss = w * sum(v for k, v in terms.items() if k != "loss" and k not in collab)
    # Terms that refine masks rather than form them ramp in over a second warm-up.
    late = warmup_weight(step, start=cfg.warmup_start + cfg.warmup_steps, ramp=cfg.warmup_steps, final=cfg.weight)
    if "collab_fit" in terms:
        # The collaborator learns from the start (its fit is not warmed up), but it
        # steers the masks only after the second warm-up: a collaborator fitted to the
        # first, near-empty masks teaches "no foreground" and the masks collapse.
        loss = loss + late * terms["collab_masks"] + terms["collab_fit"]
        parts["collab_weight"] = late
    if cfg.size_weight > 0:
        size = size_loss(mask_logits, origins, shape, max_area=cfg.size_factor * spacing**2)
        loss = loss + w * cfg.size_weight * size
        parts["size"] = float(size.detach())
    if cfg.territory_weight > 0:
        window = tuple(mask_logits.shape[-2:])
        if owners is None:
            owners = _nearest_point(origins, window, points)
        margin = cfg.territory_margin * spacing
        if cfg.territory_source == "cells":
            if cells is None or cells_depth is None:
                raise ValueError("territory_source 'cells' needs machine-made cells (re-run 'lociseg annotate')")
            tmap = cells_territory_map(
                origins, window, cells, cells_depth, _own_cells(points, owners, cells), margin=margin
            )
        else:
            tmap = territory_map(origins, window, points, owners, margin=margin)
        terr = territory_loss(mask_logits, origins, tmap, shape, valid=valid)
        # Late: on the first, window-sized blobs it adds to the background's shrink
        # pull and masks collapse (BBBC018: 91 % empty at step 580 when ramped with the rest).
        loss = loss + late * cfg.territory_weight * terr
        parts["territory"] = float(terr.detach())
        parts["territory_weight"] = late * cfg.territory_weight
    if aux_pred is not None and (cfg.aux_weight > 0 or cfg.aux_consistency_weight > 0):
        aux = aux_losses(aux_pred, mask_logits, origins, valid)
        loss = loss + cfg.aux_weight * aux["aux"] + w * cfg.aux_consistency_weight * aux["aux_consistency"]
        parts.update({k: float(v.detach()) for k, v in aux.items()})
    parts["weak_weight"] = w
    return loss, parts

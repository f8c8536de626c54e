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

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..ops.windows import gather_windows, paste_soft, window_coords
from ..transforms import point_spacing

__all__ = [
    "lacss_weak_loss",
    "points_mode_loss",
    "background_from_points",
    "size_loss",
]

EPS = 1e-6
#: Point spacing (px) assumed for an image with fewer than 2 points.
DEFAULT_SPACING = 32.0


def probs_and_penalty(mask_logits: torch.Tensor, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
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
    y, pen = probs_and_penalty(mask_logits, from_logits)
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
        y, pen = probs_and_penalty(mask_logits, from_logits)
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

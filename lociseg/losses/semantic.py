"""Targets and losses of the 3-class semantic (U-Net) baseline.

Classes: 0 = background, 1 = cell interior, 2 = cell boundary. Instances are
recovered from the interior class (:func:`lociseg.models.semantic.three_class_to_labels`),
so the boundary class only has to separate touching cells; it is rare, hence
weighted up in the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def labels_to_3class(labels: np.ndarray, boundary_width: int = 2) -> np.ndarray:
    """Convert an instance label image to background / interior / boundary classes.

    A pixel of object ``k`` is *boundary* when some pixel within chessboard
    distance ``boundary_width`` (a ``(2w+1) x (2w+1)`` square) belongs to a
    different object or to the background; the boundary band inside each
    object is therefore ``boundary_width`` pixels thick, and two touching
    objects are separated by ``2 * boundary_width`` boundary pixels. The image
    border does not count as background (objects cut by the border keep their
    interior up to the edge).

    Parameters
    ----------
    labels : (H, W) int ndarray
        Instance ids, 0 = background.
    boundary_width : int, optional
        Thickness of the boundary band in pixels (>= 1).

    Returns
    -------
    (H, W) int64 ndarray
        0 = background, 1 = interior, 2 = boundary.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if boundary_width < 1:
        raise ValueError("boundary_width must be >= 1")
    size = 2 * boundary_width + 1
    # A neighbourhood holds more than one id exactly when its max and min differ.
    hi = ndi.maximum_filter(labels, size=size, mode="nearest")
    lo = ndi.minimum_filter(labels, size=size, mode="nearest")
    out = np.zeros(labels.shape, np.int64)
    obj = labels > 0
    out[obj] = INTERIOR
    out[obj & (hi != lo)] = BOUNDARY
    return out


def labels_to_3class_torch(labels: torch.Tensor, boundary_width: int = 2) -> torch.Tensor:
    """Batched torch version of :func:`labels_to_3class` (same definition).

    Parameters
    ----------
    labels : (B, H, W) integer tensor
    boundary_width : int, optional

    Returns
    -------
    (B, H, W) int64 tensor
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
    w = int(boundary_width)
    # float64 keeps ids exact; replicate padding = 'nearest' border handling.
    x = labels.to(torch.float64)[:, None]
    x = F.pad(x, (w, w, w, w), mode="replicate")
    hi = F.max_pool2d(x, 2 * w + 1, stride=1)
    lo = -F.max_pool2d(-x, 2 * w + 1, stride=1)
    out = torch.zeros_like(labels, dtype=torch.int64)
    obj = labels > 0
    out[obj] = INTERIOR
    out[obj & (hi[:, 0] != lo[:, 0])] = BOUNDARY
    return out


def class_weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: Sequence[float] | torch.Tensor,
    ignore_index: int = -1,
) -> torch.Tensor:
    """Pixel-wise cross entropy with per-class weights, mean over weighted pixels.

    ``loss = sum_p w[t_p] * (-log softmax(z_p)[t_p]) / sum_p w[t_p]`` over the
    pixels ``p`` whose target is not ``ignore_index``; 0 when none is left.

    Parameters
    ----------
    logits : (B, K, H, W) float tensor
    target : (B, H, W) int64 tensor
        Class per pixel in ``0..K-1`` or ``ignore_index``.
    weights : sequence of K floats or (K,) tensor
        Class weights, e.g. ``(1, 1, 10)`` to weight the boundary class up.
    ignore_index : int, optional
        Target value of pixels that do not contribute.

    Returns
    -------
    scalar tensor
    """
    w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
    if w.numel() != logits.shape[1]:
        raise ValueError(f"{w.numel()} class weights for {logits.shape[1]} classes")
    target = target.long()
    keep = target != ignore_index
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index, reduction="mean")


def foreground_cross_entropy(
    logits: torch.Tensor,
    foreground: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross entropy of the 3-class output collapsed to foreground vs background.

    Used when only a (soft) foreground mask is known (weak annotations):
    ``P(fg) = p_interior + p_boundary``, computed stably as
    ``logsumexp(z_1, z_2) - logsumexp(z_0, z_1, z_2)``; the loss is
    ``-[B log P(fg) + (1 - B) log P(bg)]`` averaged over valid pixels.

    Parameters
    ----------
    logits : (B, 3, H, W) float tensor
    foreground : (B, H, W) float tensor in [0, 1]
    valid : (B, H, W) float tensor, optional
        Pixel weights (0 = ignore).
    """
    log_all = torch.logsumexp(logits, dim=1)
    log_fg = torch.logsumexp(logits[:, 1:], dim=1) - log_all
    log_bg = logits[:, 0] - log_all
    fg = foreground.to(logits.dtype)
    per_pixel = -(fg * log_fg + (1 - fg) * log_bg)
    if valid is None:
        return per_pixel.mean()
    v = valid.to(logits.dtype)
    return (per_pixel * v).sum() / v.sum().clamp_min(1.0)

"""Losses of the location proposal network."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Element-wise focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017)."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * (1 - p_t) ** gamma * ce


def lpn_loss(
    score_logits: torch.Tensor,
    offsets: torch.Tensor,
    positive: torch.Tensor,
    offset_target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    gamma: float = 2.0,
    huber_delta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Focal loss on scores (normalised by the positive count) and Huber loss on positive offsets.

    Parameters
    ----------
    score_logits : (B, h, w)
    offsets, offset_target : (B, 2, h, w), in grid units
    positive : (B, h, w) bool
    valid : (B, h, w), optional
        0 where pixels are ignored (padding).
    """
    target = positive.float()
    focal = sigmoid_focal_loss(score_logits, target, gamma)
    if valid is not None:
        focal = focal * valid
    n_pos = target.sum().clamp(min=1.0)
    score = focal.sum() / n_pos
    if positive.any():
        pos = positive[:, None].expand_as(offsets)
        offset = F.huber_loss(offsets[pos], offset_target[pos], delta=huber_delta)
    else:
        offset = offsets.sum() * 0.0
    return {"lpn_score": score, "lpn_offset": offset}

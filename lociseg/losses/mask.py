"""Supervised per-instance mask losses."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mask_bce_dice(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, *, dice: bool = True
) -> dict[str, torch.Tensor]:
    """Mean binary cross-entropy and soft Dice loss of instance windows.

    Parameters
    ----------
    logits, target : (N, h, w)
        Mask logits and 0/1 targets of each instance window.
    valid : (N, h, w), optional
        0 where a window pixel lies outside the image or is ignored.
    dice : bool
        Also compute the Dice term (skipped when its weight is 0).

    Returns
    -------
    dict
        ``mask_bce`` and, with ``dice``, ``mask_dice`` (scalar tensors, unweighted).
    """
    if logits.numel() == 0:
        z = logits.sum() * 0.0
        return {"mask_bce": z, "mask_dice": z}
    w = torch.ones_like(target) if valid is None else valid
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / w.sum().clamp(min=1.0)
    out = {"mask_bce": bce}
    if dice:
        p = torch.sigmoid(logits) * w
        t = target * w
        inter = (p * t).sum(dim=(1, 2))
        dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2)) + t.sum(dim=(1, 2)) + 1)
        out["mask_dice"] = dice.mean()
    return out

"""Losses coupling the aux border network and the main network (weak supervision).

The networks themselves are :class:`lociseg.models.aux.AuxBoundaryNet` and
:class:`lociseg.models.aux.ForegroundHead`. The aux net learns the edge map of
the main network's own masks (detached) through a ~9 px receptive field; the
main network's mask borders are pulled toward its prediction (detached).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.windows import paste_soft

__all__ = ["edge_magnitude", "aux_boundary_target", "aux_losses"]


def edge_magnitude(masks: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of each (N, h, w) window, same shape.

    Windows are padded by replication, so a mask touching its window border
    gets no spurious edge there.
    """
    kx = masks.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
    k = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    x = F.pad(masks[:, None], (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(x, k)
    # eps inside the sqrt keeps the gradient finite on flat regions.
    return torch.sqrt((g * g).sum(1) + 1e-8) - 1e-4


def aux_boundary_target(masks: torch.Tensor, origins: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Border map of the instances: ``tanh(sum_i |Sobel(y_i)|)`` pasted at image size.

    Parameters
    ----------
    masks : (N, h, w) tensor
        Instance mask probabilities in [0, 1].
    origins : (N, 2) int tensor
        Window top-left corners (y, x).
    shape : (H, W)
        Image size.

    Returns
    -------
    (H, W) tensor in [0, 1); differentiable in ``masks`` (detach it to use
    as the aux network's target).
    """
    if masks.shape[0] == 0:
        return masks.new_zeros(shape)
    return torch.tanh(paste_soft(edge_magnitude(masks), origins, shape))


def _huber(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None, delta: float) -> torch.Tensor:
    loss = F.huber_loss(a, b, reduction="none", delta=delta)
    if valid is None:
        return loss.mean()
    v = valid.to(loss.dtype)
    return (loss * v).sum() / v.sum().clamp_min(1.0)


def aux_losses(
    aux_pred: torch.Tensor,
    masks: torch.Tensor,
    origins: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    from_logits: bool = True,
    delta: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Losses coupling the aux border net and the main network for one image.

    Parameters
    ----------
    aux_pred : (H, W) or (1, H, W) tensor
        :class:`AuxBoundaryNet` output for the image.
    masks : (N, h, w) tensor
        Main network's mask logits (or probabilities with ``from_logits=False``).
    origins : (N, 2) int tensor
        Window top-left corners.
    valid : (H, W) tensor, optional
        Pixels that count.
    delta : float
        Huber threshold.

    Returns
    -------
    dict
        ``aux``: Huber(aux_pred, E.detach()) -- trains the aux net;
        ``aux_consistency``: Huber(E, aux_pred.detach()) -- pulls the main
        masks' borders ``E = aux_boundary_target(masks)`` toward borders
        visible in the image.
    """
    shape = tuple(aux_pred.shape[-2:])
    pred = aux_pred.reshape(shape)
    y = torch.sigmoid(masks) if from_logits else masks
    edges = aux_boundary_target(y, origins, shape)
    return {
        "aux": _huber(pred, edges.detach(), valid, delta),
        "aux_consistency": _huber(edges, pred.detach(), valid, delta),
    }

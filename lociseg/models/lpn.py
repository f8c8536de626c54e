"""Location proposal network: per-pixel score and offset to the cell location.

On a stride-``s`` feature grid, cell ``(i, j)`` is centred at image position
``s * (i + 0.5) - 0.5`` (pixel-centre convention, matching bilinear
resampling with ``align_corners=False``). The head predicts a score logit
(is a cell location nearby?) and an offset, in units of ``s``, from that
centre to the location.
"""

from __future__ import annotations

import torch
from torch import nn


def grid_centres(shape: tuple[int, int], stride: int, device: torch.device | None = None) -> torch.Tensor:
    """Image coordinates (H, W, 2) of the centres of a stride-``stride`` grid."""
    ys = (torch.arange(shape[0], device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    xs = (torch.arange(shape[1], device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


class LPNHead(nn.Module):
    """A small conv stack on one feature level: 1 score logit + 2 offsets per pixel."""

    def __init__(self, channels: int, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.GELU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.score = nn.Conv2d(c, 1, 1)
        self.offset = nn.Conv2d(c, 2, 1)
        # Start from a low detection prior so early focal loss is not dominated by negatives.
        nn.init.constant_(self.score.bias, -4.0)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.body(x)
        return self.score(y)[:, 0], self.offset(y)


def lpn_targets(
    points: torch.Tensor, shape: tuple[int, int], stride: int, radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score and offset targets of one image.

    A grid pixel is positive when its centre lies within ``radius`` image
    pixels of a point; a pixel near several points belongs to the nearest.

    Parameters
    ----------
    points : (N, 2) tensor
        Cell locations (y, x) in image pixels.
    shape : (h, w)
        Grid shape.
    stride : int
    radius : float
        Positive radius in image pixels.

    Returns
    -------
    positive : (h, w) bool tensor
    offsets : (2, h, w) float tensor
        ``(point - centre) / stride`` for the nearest point (zero where none).
    nearest : (h, w) long tensor
        Index of the nearest point, -1 where there are no points.
    """
    centres = grid_centres(shape, stride, points.device)
    if len(points) == 0:
        z = torch.zeros(shape, dtype=torch.bool, device=points.device)
        return (
            z,
            torch.zeros((2, *shape), device=points.device),
            torch.full(shape, -1, dtype=torch.long, device=points.device),
        )
    d = torch.cdist(centres.reshape(-1, 2), points.float())  # (h*w, N)
    dist, nearest = d.min(dim=1)
    positive = (dist <= radius).reshape(shape)
    offsets = (points.float()[nearest] - centres.reshape(-1, 2)) / stride
    return positive, offsets.T.reshape(2, *shape), nearest.reshape(shape)


@torch.no_grad()
def decode_locations(
    score_logits: torch.Tensor,
    offsets: torch.Tensor,
    stride: int,
    *,
    min_score: float = 0.3,
    max_count: int = 4000,
    min_distance: float = 8.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell locations of one image from LPN maps.

    Candidates are the local maxima (3x3) of the score map above
    ``min_score``, at most ``max_count`` by score; each moves by its offset;
    then locations closer than ``min_distance`` to a higher-scoring kept
    location are suppressed (greedy, computed as a fixed point on the
    pairwise distance matrix so it stays vectorised).

    Returns
    -------
    locations : (K, 2) float tensor (y, x) in image pixels
    scores : (K,) float tensor in [0, 1], descending
    """
    scores = torch.sigmoid(score_logits.float())
    peak = scores == nn.functional.max_pool2d(scores[None, None], 3, 1, 1)[0, 0]
    cand = peak & (scores >= min_score)
    idx = cand.reshape(-1).nonzero()[:, 0]
    s = scores.reshape(-1)[idx]
    order = torch.argsort(s, descending=True)[:max_count]
    idx, s = idx[order], s[order]
    centres = grid_centres(scores.shape, stride, scores.device).reshape(-1, 2)
    loc = centres[idx] + offsets.float().reshape(2, -1).T[idx] * stride
    if len(loc) > 1 and min_distance > 0:
        near = torch.cdist(loc, loc) < min_distance
        higher = torch.ones_like(near).triu(1).T  # j < i: j has a higher score than i
        blockers = near & higher
        keep = torch.ones(len(loc), dtype=torch.bool, device=loc.device)
        for _ in range(len(loc)):
            new = ~(blockers & keep[None, :]).any(dim=1)
            if torch.equal(new, keep):
                break
            keep = new
        loc, s = loc[keep], s[keep]
    return loc, s

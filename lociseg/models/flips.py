"""Test-time augmentation by the four axis flips of an image.

Every network here is only approximately flip-equivariant (it learned from
flipped crops), so predicting on the four flips and averaging the un-flipped
outputs removes part of its orientation-dependent error. Outputs made this
way are exactly equivariant to flips of the input, which the tests check.
"""

from __future__ import annotations

import torch

#: Spatial dims flipped by each of the four views (last two dims of any map).
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def flipped_axes(view: int) -> tuple[bool, bool]:
    """Whether view ``view`` flips (y, x)."""
    d = FLIPS[view]
    return -2 in d, -1 in d


def flip_views(x: torch.Tensor) -> torch.Tensor:
    """Stack the four flips of a (1, C, H, W) batch into (4, C, H, W), in :data:`FLIPS` order."""
    if x.shape[0] != 1:
        raise ValueError(f"flip_views takes one image, got a batch of {x.shape[0]}")
    return torch.cat([x.flip(d) if d else x for d in FLIPS])


def unflip(y: torch.Tensor, view: int) -> torch.Tensor:
    """Undo view ``view``'s flip on the last two dims of ``y``."""
    d = FLIPS[view]
    return y.flip(d) if d else y


def mean_unflipped(y: torch.Tensor) -> torch.Tensor:
    """Mean over the four views of (4, ..., H, W) maps, each flipped back first."""
    return torch.stack([unflip(y[k], k) for k in range(len(FLIPS))]).mean(dim=0)

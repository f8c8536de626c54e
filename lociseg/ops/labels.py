"""Operations on label images and boolean masks shared by annotation and inference."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["fill_label_holes", "largest_piece"]


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Give the background pixels that one label alone encloses to that label, in place.

    A pocket of background walled in by several touching cells is no cell's
    hole and stays background. Returns ``labels``.
    """
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        sub = labels[box]
        holes = ndi.binary_fill_holes(sub == k) & (sub == 0)
        sub[holes] = k
    return labels


def largest_piece(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 4-connected piece of a boolean mask and its area (0 when empty)."""
    comps, nc = ndi.label(mask)
    if nc <= 1:
        return mask, int(mask.sum())
    sizes = np.bincount(comps.ravel())
    sizes[0] = 0
    best = int(sizes.argmax())
    return comps == best, int(sizes[best])

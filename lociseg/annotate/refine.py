"""Self-training: merging a model's cells with machine-made ones (the model runs in :mod:`lociseg.predict.selftrain`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..ops.labels import largest_piece

__all__ = ["merge_cells"]


def merge_cells(primary: np.ndarray, secondary: np.ndarray, *, max_overlap: float = 0.5) -> np.ndarray:
    """``primary`` labels plus each ``secondary`` cell that ``primary`` leaves mostly uncovered.

    A secondary cell is added when at most ``max_overlap`` of its area lies
    in primary cells; it takes only the pixels no primary cell has, and then
    only its largest connected piece.

    Parameters
    ----------
    primary, secondary : (H, W) int label images
    max_overlap : float
        Largest fraction of a secondary cell's area already in primary cells
        for it to be added (0: only cells primary does not touch).

    Returns
    -------
    (H, W) int32 label image: primary's labels unchanged, added cells after them.
    """
    primary = np.asarray(primary)
    secondary = np.asarray(secondary)
    if primary.shape != secondary.shape:
        raise ValueError(f"label images differ in shape: {primary.shape} vs {secondary.shape}")
    out = primary.astype(np.int32, copy=True)
    n_sec = int(secondary.max(initial=0))
    if n_sec == 0:
        return out
    taken = primary > 0
    area = np.bincount(secondary.ravel(), minlength=n_sec + 1)
    covered = np.bincount(secondary[taken].ravel(), minlength=n_sec + 1)
    next_label = int(out.max(initial=0)) + 1
    for k, sl in enumerate(ndi.find_objects(secondary), start=1):
        if sl is None or covered[k] > max_overlap * area[k]:
            continue
        piece, n_px = largest_piece((secondary[sl] == k) & ~taken[sl])
        if n_px == 0:
            continue
        out[sl][piece] = next_label
        next_label += 1
    return out

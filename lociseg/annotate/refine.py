"""Self-training: a model trained on machine-made cells re-draws them for the next round."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from ..ops.labels import largest_piece

if TYPE_CHECKING:
    import torch

    from ..predict.api import Segmenter

__all__ = ["merge_cells", "cells_from_model"]


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


def cells_from_model(
    image: np.ndarray,
    model: Segmenter | torch.nn.Module | str | os.PathLike,
    *,
    channels: Sequence[int | str] | None = None,
    channel_names: Sequence[str] | None = None,
    fill: np.ndarray | None = None,
    max_overlap: float = 0.5,
    diameter: float | None = None,
    augment: bool = True,
    overlaps: str = "probability",
) -> tuple[np.ndarray, float]:
    """Pseudo-label cells of one image from a trained model (one self-training round).

    The model segments the image at its own per-image scale estimate (or
    ``diameter``), with flip averaging and overlaps by probability by
    default: the settings that scored best on BBBC018 (BENCHMARKS.md).
    Cells of ``fill`` (e.g. the machine-made cells the model was trained on)
    that the model missed are added (:func:`merge_cells`).

    Parameters
    ----------
    image : (C, H, W) ndarray
        Raw channels.
    model : Segmenter, nn.Module or path
        Anything :func:`lociseg.load_model` takes.
    channels, channel_names : optional
        Which of ``image``'s channels the model takes, as
        :meth:`~lociseg.predict.Segmenter.segment`.
    fill : (H, W) int ndarray, optional
    max_overlap : float
        See :func:`merge_cells`.
    diameter, augment, overlaps
        As :meth:`lociseg.predict.Segmenter.segment`.

    Returns
    -------
    cells : (H, W) int32 label image
    diameter : float
        The diameter the model was run at, in px.
    """
    from ..predict.api import Segmenter, load_model

    seg = model if isinstance(model, Segmenter) else load_model(model)
    with warnings.catch_warnings():
        # the estimated diameter is returned, not printed once per image
        warnings.filterwarnings("ignore", message="cell diameter estimated")
        labels, table = seg.segment(image, diameter=diameter, channels=channels, channel_names=channel_names, augment=augment,
                                    overlaps=overlaps)
    cells = labels.astype(np.int32)
    if fill is not None:
        cells = merge_cells(cells, fill, max_overlap=max_overlap)
    return cells, float(table.meta["diameter_used"])

"""Self-training: a model trained on machine-made cells re-draws them for the next round."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ..annotate.refine import merge_cells
from .api import Segmenter, load_model

__all__ = ["cells_from_model"]


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
    seg = model if isinstance(model, Segmenter) else load_model(model)
    with warnings.catch_warnings():
        # the estimated diameter is returned, not printed once per image
        warnings.filterwarnings("ignore", message="cell diameter estimated")
        labels, table = seg.segment(
            image, diameter=diameter, channels=channels, channel_names=channel_names, augment=augment, overlaps=overlaps
        )
    cells = labels.astype(np.int32)
    if fill is not None:
        cells = merge_cells(cells, fill, max_overlap=max_overlap)
    return cells, float(table.meta["diameter_used"])

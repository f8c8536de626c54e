"""Self-training: a model trained on machine-made cells re-draws them for the next round."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..annotate.refine import merge_cells
from .api import Segmenter, load_model

__all__ = ["ModelCells", "cells_from_model", "model_channel_order"]


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


def model_channel_order(seg: Segmenter, nucleus: str | int, cytoplasm: str | int) -> tuple[list[int], bool]:
    """Indices into a (nucleus, cytoplasm) image in the order ``seg`` takes its channels.

    The model's channel names are matched against ``nucleus`` and
    ``cytoplasm``; when they cannot be (unnamed, or indices given), the
    order of lociseg's configs is taken: cytoplasm, then nucleus. A
    one-channel model gets the nuclear channel.

    Returns
    -------
    order : list of int
    matched : bool
        Whether the order came from the names (False: the configs' order).
    """
    if seg.spec.in_channels == 1:
        return [0], True
    names = [str(nucleus).strip().lower(), str(cytoplasm).strip().lower()]
    wanted = [str(c).strip().lower() for c in seg.spec.channels]
    if len(wanted) == 2 and all(c in names for c in wanted):
        return [names.index(c) for c in wanted], True
    return [1, 0], False


@dataclass
class ModelCells:
    """A model re-draws each image's cells (:func:`cells_from_model`) in :func:`lociseg.annotate.annotate_folder`.

    Attributes
    ----------
    segmenter : Segmenter
    channels : list of int
        Its channels' indices in the (nucleus, cytoplasm) image (:func:`model_channel_order`).
    keep_missed : bool
        Keep the machine cells the model missed.
    """

    segmenter: Segmenter
    channels: list[int]
    keep_missed: bool = True

    @property
    def needs_machine_cells(self) -> bool:
        return self.keep_missed

    def __call__(self, image: np.ndarray, machine: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
        """The model's cells of ``image`` (with the missed machine cells) and what ``meta.json`` records of them."""
        cells, used = cells_from_model(
            image, self.segmenter, channels=self.channels, fill=machine if self.keep_missed else None
        )
        meta = {"cells_from": self.segmenter.name, "cells_diameter": round(used, 2), "keep_missed": self.keep_missed}
        return cells, meta


def flipped_view(
    image: np.ndarray, model: Segmenter, channels: Sequence[int | str] | None, diameter: float | None
) -> np.ndarray:
    """The model's cells of ``image`` flipped along both axes (one pass at ``diameter``), mapped back.

    A second, independent view of the image: an outline the model draws the
    same way in both is stable (:func:`lociseg.annotate.evidence.view_agreement`).

    Parameters
    ----------
    image : (C, H, W) ndarray
    model : Segmenter
    channels : optional
        Which of ``image``'s channels the model takes.
    diameter : float or None
        The scale of the first view (None: estimated again).
    """
    flipped = np.ascontiguousarray(np.asarray(image)[:, ::-1, ::-1])
    cells, _ = cells_from_model(flipped, model, channels=channels, diameter=diameter, augment=False)
    return np.ascontiguousarray(cells[::-1, ::-1])

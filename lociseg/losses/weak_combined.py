"""The configured weak mask loss of one image: its config, the warm-up, and how the terms combine.

:func:`weak_image_loss` picks the mode's terms (:func:`~lociseg.losses.weak.lacss_weak_loss`
or :func:`~lociseg.losses.weak.points_mode_loss`), adds the size, territory and
aux terms that are switched on, and weights them by the warm-up schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import Config, bounded
from ..transforms import point_spacing
from .aux import aux_losses
from .territory import cells_territory_map, nearest_point, own_cells, territory_loss, territory_map
from .weak import DEFAULT_SPACING, lacss_weak_loss, points_mode_loss, size_loss

__all__ = ["warmup_weight", "WeakLossConfig", "weak_image_loss"]


def warmup_weight(step: int, *, start: int = 0, ramp: int = 1000, final: float = 1.0) -> float:
    """Weight of a weak term at ``step``: 0 before ``start``, then a linear ramp to ``final`` over ``ramp`` steps.

    Weak terms on an untrained network mostly push masks to extremes
    (everything or nothing); ramping them in after the location head has
    settled avoids that early collapse.
    """
    if step < start:
        return 0.0
    if ramp <= 0:
        return float(final)
    return float(final) * min(1.0, (step - start + 1) / ramp)


@dataclass
class WeakLossConfig(Config):
    """Weights and schedule of the weak mask losses (a ``training.weak`` section).

    Attributes
    ----------
    weight : float
        Weight of the mask loss (after warm-up).
    warmup_start, warmup_steps : int
        The mask loss is off before ``warmup_start`` and ramps linearly to
        ``weight`` over ``warmup_steps`` (:func:`warmup_weight`).
    size_weight : float
        Weight of :func:`size_loss`; 0 turns it off.
    size_factor : float
        ``A_max = size_factor * point_spacing**2``.
    background_distance : float or None
        Points mode: background starts this far (px) from every point
        (None: one point spacing).
    background_source : {"points", "foreground"}
        Points mode: where the background map comes from: ``points``, the
        pixels farther than ``background_distance`` from every point;
        ``foreground``, the complement of the annotation's foreground (a
        graph cut of the cytoplasm stain, as the 2021 method had it).
    collaborator : bool
        Points mode: train a :class:`lociseg.models.aux.ForegroundHead` jointly.
        It is fitted from step 0; its pull on the masks ramps in over a second
        warm-up (from ``warmup_start + warmup_steps``), once the points terms
        have made masks worth imitating.
    aux_weight, aux_consistency_weight : float
        Weights of :func:`lociseg.losses.aux.aux_losses` (0: no aux network).
    territory_weight : float
        Weight of :func:`territory_loss` relative to the other mask terms; 0
        turns it off. It ramps in over a second warm-up (like the
        collaborator's pull), once masks have formed: it moves borders, it
        does not make masks.
    territory_margin : float
        Its free band on either side of the border, as a fraction of the
        cell scale (the training diameter).
    territory_source : {"points", "cells"}
        Where the borders of the territory prior lie: ``points``, the
        bisectors between neighbouring points (:func:`territory_map`);
        ``cells``, the borders of the annotation's machine-made cells
        (:func:`cells_territory_map`; needs annotations with cells).
    """

    weight: float = bounded(1.0, ge=0)
    warmup_start: int = bounded(0, ge=0)
    warmup_steps: int = bounded(500, ge=0)
    size_weight: float = bounded(0.1, ge=0)
    size_factor: float = bounded(2.0, gt=0)
    background_distance: float | None = bounded(None, ge=0)
    background_source: Literal["points", "foreground"] = "points"
    collaborator: bool = False
    aux_weight: float = bounded(0.0, ge=0)
    aux_consistency_weight: float = bounded(0.0, ge=0)
    territory_weight: float = bounded(0.0, ge=0)
    territory_margin: float = bounded(0.15, ge=0)
    territory_source: Literal["points", "cells"] = "points"


def weak_image_loss(
    cfg: WeakLossConfig,
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor,
    *,
    foreground: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    shape: tuple[int, int] | None = None,
    step: int = 0,
    collaborator: torch.Tensor | None = None,
    aux_pred: torch.Tensor | None = None,
    scale: float | None = None,
    owners: torch.Tensor | None = None,
    cells: torch.Tensor | None = None,
    cells_depth: torch.Tensor | None = None,
    mode: Literal["weak", "points"] = "weak",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total weak mask loss of one image, as configured: one call for a model's ``training_loss``.

    Parameters
    ----------
    cfg : WeakLossConfig
    mask_logits : (N, h, w) tensor
        Mask logits of the instances at the annotated points (or at the
        model's locations matched to them).
    origins : (N, 2) int tensor
        Window top-left corners (y, x) in image pixels.
    points : (P, 2) tensor
        Annotated points of the image (for the cell scale and points mode).
    foreground, valid : (H, W) tensors, optional
        ``foreground`` is required in ``weak`` mode.
    shape : (H, W), optional
        Image size when ``foreground`` is not given.
    step : int
        Training step (warm-up).
    collaborator : (H, W) tensor, optional
        :class:`~lociseg.models.aux.ForegroundHead` logits (points mode).
    aux_pred : (H, W) tensor, optional
        :class:`~lociseg.models.aux.AuxBoundaryNet` output.
    scale : float, optional
        Cell size in pixels (the training diameter) for the size terms and
        the points-mode background; default: the spacing of ``points``,
        which is unreliable on a crop holding only a few of them.
    owners : (N,) long tensor, optional
        Index into ``points`` of each instance's point (the territory term);
        default: the point nearest each window's centre.
    cells, cells_depth : (H, W) tensors, optional
        Machine-made cell labels and their :func:`~lociseg.train.data.border_depth`
        (territory term with ``territory_source`` "cells").
    mode : {"weak", "points"}
        ``weak``: points + foreground (:func:`lacss_weak_loss`); ``points``:
        points only (:func:`points_mode_loss`, optionally with the learned
        foreground collaborator).

    Returns
    -------
    loss : scalar tensor
    parts : dict of float
        Every term (unweighted) plus ``weak_weight`` for logging.
    """
    if shape is None:
        if foreground is None:
            raise ValueError("weak_image_loss needs foreground or shape")
        shape = tuple(foreground.shape[-2:])
    w = warmup_weight(step, start=cfg.warmup_start, ramp=cfg.warmup_steps, final=cfg.weight)
    spacing = point_spacing(points, DEFAULT_SPACING) if scale is None else scale
    terms = _mode_terms(cfg, mode, mask_logits, origins, points, shape, foreground, valid, collaborator, spacing)
    parts = {k: float(v.detach()) for k, v in terms.items() if k != "loss"}
    collab = ("collab_fit", "collab_masks")
    loss = w * sum(v for k, v in terms.items() if k != "loss" and k not in collab)
    # Terms that refine masks rather than form them ramp in over a second warm-up.
    late = warmup_weight(step, start=cfg.warmup_start + cfg.warmup_steps, ramp=cfg.warmup_steps, final=cfg.weight)
    if "collab_fit" in terms:
        # The collaborator learns from the start (its fit is not warmed up), but it
        # steers the masks only after the second warm-up: a collaborator fitted to the
        # first, near-empty masks teaches "no foreground" and the masks collapse.
        loss = loss + late * terms["collab_masks"] + terms["collab_fit"]
        parts["collab_weight"] = late
    if cfg.size_weight > 0:
        size = size_loss(mask_logits, origins, shape, max_area=cfg.size_factor * spacing**2)
        loss = loss + w * cfg.size_weight * size
        parts["size"] = float(size.detach())
    if cfg.territory_weight > 0:
        terr = _territory_term(cfg, mask_logits, origins, points, shape, valid, owners, cells, cells_depth, spacing)
        # Late: on the first, window-sized blobs it adds to the background's shrink
        # pull and masks collapse (BBBC018: 91 % empty at step 580 when ramped with the rest).
        loss = loss + late * cfg.territory_weight * terr
        parts["territory"] = float(terr.detach())
        parts["territory_weight"] = late * cfg.territory_weight
    if aux_pred is not None and (cfg.aux_weight > 0 or cfg.aux_consistency_weight > 0):
        aux = aux_losses(aux_pred, mask_logits, origins, valid)
        loss = loss + cfg.aux_weight * aux["aux"] + w * cfg.aux_consistency_weight * aux["aux_consistency"]
        parts.update({k: float(v.detach()) for k, v in aux.items()})
    parts["weak_weight"] = w
    return loss, parts


def _mode_terms(
    cfg: WeakLossConfig,
    mode: str,
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor,
    shape: tuple[int, int],
    foreground: torch.Tensor | None,
    valid: torch.Tensor | None,
    collaborator: torch.Tensor | None,
    spacing: float,
) -> dict[str, torch.Tensor]:
    """The terms of the mode: points + foreground (``weak``) or points only (``points``)."""
    if mode == "weak":
        if foreground is None:
            raise ValueError("mode 'weak' needs a foreground map (run 'lociseg annotate' or use mode 'points')")
        return lacss_weak_loss(mask_logits, origins, foreground, valid)
    if mode != "points":
        raise ValueError(f"unknown weak mode {mode!r}")
    background = None
    if cfg.background_source == "foreground":
        if foreground is None:
            raise ValueError("background_source 'foreground' needs a foreground map (run 'lociseg annotate')")
        background = 1 - foreground
    return points_mode_loss(
        mask_logits,
        origins,
        points,
        shape,
        background=background,
        valid=valid,
        collaborator=collaborator if cfg.collaborator else None,
        background_distance=cfg.background_distance,
        spacing=spacing,
    )


def _territory_term(
    cfg: WeakLossConfig,
    mask_logits: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor,
    shape: tuple[int, int],
    valid: torch.Tensor | None,
    owners: torch.Tensor | None,
    cells: torch.Tensor | None,
    cells_depth: torch.Tensor | None,
    spacing: float,
) -> torch.Tensor:
    """:func:`territory_loss` against the borders of ``cfg.territory_source`` (unweighted)."""
    window = tuple(mask_logits.shape[-2:])
    if owners is None:
        owners = nearest_point(origins, window, points)
    margin = cfg.territory_margin * spacing
    if cfg.territory_source == "cells":
        if cells is None or cells_depth is None:
            raise ValueError("territory_source 'cells' needs machine-made cells (re-run 'lociseg annotate')")
        tmap = cells_territory_map(origins, window, cells, cells_depth, own_cells(points, owners, cells), margin=margin)
    else:
        tmap = territory_map(origins, window, points, owners, margin=margin)
    return territory_loss(mask_logits, origins, tmap, shape, valid=valid)

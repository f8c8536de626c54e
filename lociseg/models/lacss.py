"""LACSS: location-assisted cell segmentation.

``image -> ConvNeXt -> FPN -> stride-4 level -> {LPN, SegHead}``: the location
proposal network finds one location per cell, the segmentation head predicts
a mask in a fixed window around each location, and the masks are pasted into
a label image (:func:`lociseg.predict.paste_instances`). Supervision is
either full labels or weak annotations (points + foreground, or points
alone), selected by ``LacssConfig.mode``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from ..config import Config, bounded
from ..errors import ResultWarning
from ..losses.diagnostics import weak_diagnostics
from ..losses.lpn import lpn_loss
from ..losses.mask import mask_bce_dice
from ..losses.weak_combined import WeakLossConfig, weak_image_loss
from ..structures import Instances
from .aux import AuxBoundaryNet, ForegroundHead
from .backbone import BackboneConfig, ConvNeXt
from .base import InputSpec, ModelConfig, SegmentationModel
from .flips import FLIPS, flip_views, flipped_axes, mean_unflipped, unflip
from .fpn import FPN
from .lpn import LPNHead, decode_locations
from .seghead import SegHead
from .targets import lacss_targets, window_targets

STRIDE = 4
#: Input sizes must be multiples of the coarsest stride.
SIZE_MULTIPLE = 32

DenseRunner = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
"""What runs :meth:`LacssModel.forward` at prediction: the module itself, or its graph in another runtime."""


@dataclass
class LPNConfig(Config):
    """Location proposal settings (distances in image pixels at model scale).

    Attributes
    ----------
    width, depth : int
        Conv stack of the head.
    radius : float
        Grid pixels within this distance of a location are positives.
    min_score : float
        Detections below this score are dropped at prediction.
    max_count : int
        At most this many detections per image (or tile).
    min_distance : float
        Locations closer than this to a higher-scoring one are suppressed.
    """

    width: int = bounded(64, ge=1)
    depth: int = bounded(2, ge=0)
    radius: float = bounded(6.0, gt=0)
    min_score: float = bounded(0.4, ge=0, le=1)
    max_count: int = bounded(4000, ge=1)
    min_distance: float = bounded(8.0, ge=0)


@dataclass
class SegHeadConfig(Config):
    """Segmentation head settings: ``window`` grid cells (x4 = image px), ``width`` channels and
    the kernel of the per-instance convolution (1, as in LACSS, costs a ninth of 3 per cell;
    spatial context comes from the dense 3x3 stack run once per image).

    ``location_prior`` adds a fixed disc of the training radius around each location to the mask
    logits (:func:`~lociseg.models.seghead.location_prior`), so weak training does not start by
    shrinking every mask to empty. None: on in ``weak`` and ``weak+aux`` (where it was measured),
    off in ``supervised`` and ``points``; checkpoints written before the option load with it off.
    """

    width: int = bounded(32, ge=1)
    window: int = bounded(24, ge=1)
    instance_kernel: int = bounded(1, ge=1)
    location_prior: bool | None = None


@dataclass
class LossWeights(Config):
    """Weights of the loss terms: LPN score and offset (every mode), mask BCE and Dice (supervised).

    ``mask_dice`` 0 also skips computing the Dice term.
    """

    lpn_score: float = bounded(1.0, ge=0)
    lpn_offset: float = bounded(1.0, ge=0)
    mask_bce: float = bounded(1.0, ge=0)
    mask_dice: float = bounded(0.5, ge=0)


@dataclass
class LacssConfig(ModelConfig):
    """Configuration of a LACSS model.

    Attributes
    ----------
    input : InputSpec
        Channels, normalisation and the training cell diameter (32 px).
    backbone : BackboneConfig
        Encoder preset (``tiny``, ``base``, ``small``).
    fpn_channels : int
        Channels of the FPN levels.
    lpn, seghead : LPNConfig, SegHeadConfig
    loss : LossWeights
        Supervised loss weights.
    mode : {"supervised", "weak", "weak+aux", "points"}
        ``supervised``: instance labels; ``weak``: points + foreground with
        the LACSS loss; ``weak+aux``: the same plus the training-only
        auxiliary boundary network; ``points``: points only (overlap,
        background far from points, size), optionally with a learned
        foreground collaborator (``weak.collaborator``).
    weak : WeakLossConfig
        Weights and warm-up of the weak mask losses (which of them apply
        follows ``mode``). In ``weak+aux`` mode zero aux weights default to 1.
    match_start : int
        From this step on, each annotated location is replaced by the
        nearest predicted location (within ``match_distance``) when choosing
        where the segmentation head looks, so training sees the locations
        inference will use.
    match_distance : float
    max_instances : int
        At most this many instances per training image get a mask loss.
    """

    input: InputSpec = field(default_factory=lambda: InputSpec(channels=["actin", "DNA"], in_channels=2))
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fpn_channels: int = bounded(64, ge=1)
    lpn: LPNConfig = field(default_factory=LPNConfig)
    seghead: SegHeadConfig = field(default_factory=SegHeadConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    mode: Literal["supervised", "weak", "weak+aux", "points"] = "supervised"
    weak: WeakLossConfig = field(default_factory=WeakLossConfig)
    match_start: int = bounded(500, ge=0)
    match_distance: float = bounded(8.0, ge=0)
    max_instances: int = bounded(256, ge=1)

    @property
    def weakly_supervised(self) -> bool:
        """Every mode but ``supervised`` trains from points (and foreground)."""
        return self.mode != "supervised"

    @property
    def reads_cells(self) -> bool:
        """The weak territory term reads machine-made cells when ``weak.territory_source`` is ``cells``."""
        return self.weakly_supervised and self.weak.territory_source == "cells"

    @property
    def uses_location_prior(self) -> bool:
        """Whether the mask head adds its location prior (``seghead.location_prior``; None: ``weak``, ``weak+aux``)."""
        prior = self.seghead.location_prior
        return self.mode in ("weak", "weak+aux") if prior is None else prior

    def weak_loss_config(self) -> WeakLossConfig:
        """The weak-loss settings in effect for ``mode`` (aux weights on only in ``weak+aux``)."""
        w = self.weak
        if self.mode == "weak+aux" and w.aux_weight == 0 and w.aux_consistency_weight == 0:
            w = replace(w, aux_weight=1.0, aux_consistency_weight=1.0)
        if self.mode != "weak+aux":
            w = replace(w, aux_weight=0.0, aux_consistency_weight=0.0)
        return w


class LacssModel(SegmentationModel):
    """Backbone + FPN + LPN + segmentation head (+ training-only weak-mode helpers)."""

    def __init__(self, config: LacssConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else LacssConfig()
        self.config = config
        c_in = config.input.in_channels
        self.backbone = ConvNeXt(c_in, config.backbone)
        self.fpn = FPN(self.backbone.widths, config.fpn_channels, num_outputs=1)
        self.lpn = LPNHead(config.fpn_channels, config.lpn.width, config.lpn.depth)
        self.seghead = SegHead(
            config.fpn_channels,
            config.seghead.width,
            config.seghead.window,
            STRIDE,
            instance_kernel=config.seghead.instance_kernel,
            prior_radius=config.input.target_diameter / 2 if config.uses_location_prior else 0.0,
        )
        # Training-only helpers: never called by predict_instances, so inference cost is unchanged.
        self.aux = None
        self.collaborator = None
        if config.mode == "weak+aux":
            self.aux = AuxBoundaryNet(c_in)
        if config.mode == "points" and config.weak.collaborator:
            self.collaborator = ForegroundHead(c_in)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense outputs of a (B, C, H, W) batch, H and W multiples of 32.

        Returns
        -------
        score_logits : (B, H/4, W/4)
        offsets : (B, 2, H/4, W/4)
            Offsets to the cell location in stride-4 grid units.
        seg_features : (B, width, H/4, W/4)
            Dense features of the segmentation head.
        """
        p2 = self.fpn(self.backbone(image))[0]
        score, offsets = self.lpn(p2)
        return score, offsets, self.seghead.dense_features(p2)

    # ----------------------------------------------------------------- training health
    @torch.no_grad()
    def diagnostics(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """Weak modes: :func:`~lociseg.losses.diagnostics.weak_diagnostics` of the masks
        the model predicts (in eval mode) at the first image's annotated points.
        """
        if not self.config.weakly_supervised or not len(batch["points"][0]):
            return {}
        was = self.training
        self.eval()
        try:
            _, _, dense = self(batch["image"][:1])
            logits, origins = self.seghead(dense[0], batch["points"][0])
        finally:
            self.train(was)
        fg = batch.get("foreground")
        return weak_diagnostics(logits, origins, batch["points"][0], None if fg is None else fg[0])

    def collapse_checks(self) -> dict[str, Any] | None:
        """Weak modes are watched for collapse. Coverage is judged once every warm-up (masks, then
        territory/collaborator) is done and has settled, and only where the loss asks masks to
        cover a foreground (not in ``points`` mode).
        """
        if not self.config.weakly_supervised:
            return None
        w = self.config.weak
        if self.config.mode == "points":
            return {"coverage_from": 0, "coverage_limit": 0.0}
        return {"coverage_from": w.warmup_start + 3 * w.warmup_steps, "coverage_limit": 0.4}

    # ----------------------------------------------------------------- training
    def build_targets(
        self, batch: dict[str, Any], score: torch.Tensor, offsets: torch.Tensor, step: int, *, supervised: bool
    ):
        """The batch's training targets under this model's settings (:func:`~lociseg.models.targets.lacss_targets`)."""
        cfg = self.config
        return lacss_targets(
            batch,
            score,
            offsets,
            step,
            supervised=supervised,
            stride=STRIDE,
            radius=cfg.lpn.radius,
            max_instances=cfg.max_instances,
            match_start=cfg.match_start,
            match_distance=cfg.match_distance,
            decode=self._decode_kwargs(),
        )

    def training_loss(self, batch: dict[str, Any], step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted LPN + mask losses of a batch: targets (:mod:`~lociseg.models.targets`), heads, losses."""
        cfg = self.config
        supervised = cfg.mode == "supervised"
        if supervised and batch.get("labels") is None:
            raise ValueError("mode 'supervised' needs 'labels' in the batch (weak data? set lacss.mode)")
        image = batch["image"]
        score, offsets, dense = self(image)
        aux_pred = self.aux(image) if self.aux is not None else None
        collab = self.collaborator(image) if self.collaborator is not None else None
        t = self.build_targets(batch, score, offsets, step, supervised=supervised)
        logs: dict[str, float] = {}
        mask_parts: dict[str, list[torch.Tensor]] = {}  # loss term -> one value per image that has it
        for i, sel in enumerate(t.selected):
            if len(t.points[i]) == 0:
                continue
            logits, origins = self.seghead(dense[i], t.locations[i])
            valid = batch.get("valid")
            valid_i = None if valid is None else valid[i]
            # Supervised: every instance; weak with corrected cells: those (ids > 0) as full labels.
            ids = None if t.ids[i] is None else t.ids[i][sel]
            full = ids > 0 if ids is not None else None
            if full is not None and full.any():
                labels = batch["labels"][i] if supervised else batch["corrected"][i]
                target, win_valid = window_targets(labels, ids[full], origins[full], logits.shape[-1], valid_i)
                for k, v in mask_bce_dice(logits[full], target, win_valid, dice=cfg.loss.mask_dice > 0).items():
                    mask_parts.setdefault(k, []).append(v)
            if not supervised:
                weak = slice(None) if full is None else ~full
                loss_i, parts = self._weak_loss(
                    batch, i, logits[weak], origins[weak], t.points[i], sel[weak], step, aux_pred, collab
                )
                mask_parts.setdefault("weak", []).append(loss_i)
                for k, val in parts.items():
                    logs[k] = logs.get(k, 0.0) + val / len(image)
        lpn = lpn_loss(score, offsets, t.positive, t.offsets, t.grid_valid)
        total = cfg.loss.lpn_score * lpn["lpn_score"] + cfg.loss.lpn_offset * lpn["lpn_offset"]
        if mask_parts:
            for key, values in mask_parts.items():
                term = torch.stack(values).mean()
                total = total + (1.0 if key == "weak" else getattr(cfg.loss, key)) * term
                logs[key] = float(term.detach())
        else:
            total = total + dense.sum() * 0.0  # keep every parameter in the graph
        logs.update({k: float(v.detach()) for k, v in lpn.items()})
        logs["instances"] = float(sum(len(sel) for sel, p in zip(t.selected, t.points) if len(p)))
        return total, logs

    def _decode_kwargs(self) -> dict[str, Any]:
        """Settings of :func:`~lociseg.models.lpn.decode_locations` at prediction (and for matching)."""
        lpn = self.config.lpn
        return {"min_score": lpn.min_score, "max_count": lpn.max_count, "min_distance": lpn.min_distance}

    def _weak_loss(
        self,
        batch: dict[str, Any],
        i: int,
        logits: torch.Tensor,
        origins: torch.Tensor,
        points: torch.Tensor,
        sel: torch.Tensor,
        step: int,
        aux_pred: torch.Tensor | None,
        collab: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weak mask loss of image ``i``, at the scale of the LPN losses.

        With corrected cells in the batch, the reviewed pixels belong to them:
        for the weak instances they are background (``weak`` mode: the
        foreground is 0 there) or, in ``points`` mode, they do not count.
        """
        cfg = self.config
        fg, valid = batch.get("foreground"), batch.get("valid")
        fg = None if fg is None else fg[i]
        valid = None if valid is None else valid[i]
        if "corrected" in batch:
            reviewed = batch["reviewed"][i] if "reviewed" in batch else batch["corrected"][i] > 0
            free = 1.0 - reviewed.float()
            if fg is not None:
                fg = fg * free
            if cfg.mode == "points":
                valid = free if valid is None else valid * free
        loss, parts = weak_image_loss(
            cfg.weak_loss_config(),
            logits,
            origins,
            points,
            foreground=fg,
            valid=valid,
            shape=tuple(batch["image"].shape[-2:]),
            step=step,
            collaborator=None if collab is None else collab[i],
            aux_pred=None if aux_pred is None else aux_pred[i],
            scale=cfg.input.target_diameter,
            owners=sel,
            cells=batch["cells"][i] if "cells" in batch else None,
            cells_depth=batch["cells_depth"][i] if "cells_depth" in batch else None,
            mode="points" if cfg.mode == "points" else "weak",
        )
        # The weak loss sums over pixels (order: one cell area); dividing by the
        # squared training diameter brings it to the scale of the LPN losses.
        return loss / cfg.input.target_diameter**2, parts

    # --------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict_instances(
        self, image: torch.Tensor, chunk: int = 512, *, augment: bool = False, forward: DenseRunner | None = None
    ) -> Instances:
        """Instances of one normalised image (1, C, H, W) at model scale (any H, W).

        ``augment`` averages the four flips of the image (:mod:`~lociseg.models.flips`):
        the LPN maps before locations are decoded, then each location's mask
        over the views that cover each pixel; about 4x the compute.
        ``forward`` runs the dense network in place of :meth:`forward` (the
        same weights in another runtime, e.g. ONNX Runtime:
        :mod:`lociseg.predict.backend`); decoding stays here.
        """
        was_training = self.training
        self.eval()
        try:
            return self._predict(image, chunk, augment, forward)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict_locations(self, image: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cell locations and scores of each image of a normalised (B, C, H, W) batch, without masks.

        Backbone, FPN and LPN only (no segmentation head): the cheap pass of
        the scale search (:mod:`lociseg.predict.scale_search`).
        """
        cfg = self.config
        was_training = self.training
        self.eval()
        try:
            h, w = image.shape[-2:]
            ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
            x = F.pad(image, (0, pw, 0, ph)) if ph or pw else image
            score, offsets = self.lpn(self.fpn(self.backbone(x))[0])
        finally:
            self.train(was_training)
        out = []
        for b in range(len(x)):
            locs, scores = decode_locations(
                score[b],
                offsets[b],
                STRIDE,
                min_score=cfg.lpn.min_score,
                max_count=cfg.lpn.max_count,
                min_distance=cfg.lpn.min_distance,
            )
            _warn_if_capped(len(locs), cfg.lpn.max_count)
            inside = (locs[:, 0] >= 0) & (locs[:, 0] <= h - 1) & (locs[:, 1] >= 0) & (locs[:, 1] <= w - 1)
            out.append((locs[inside].cpu().numpy().astype(np.float32), scores[inside].cpu().numpy().astype(np.float32)))
        return out

    def _dense_outputs(
        self, x: torch.Tensor, augment: bool, forward: DenseRunner | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score logits (h, w), offsets (2, h, w) and per-view seg features (V, width, h, w) of one image."""
        forward = forward or self
        if not augment:
            score, offsets, dense = forward(x)
            return score[0], offsets[0], dense
        score, offsets, dense = forward(flip_views(x))
        # A flip reverses the offsets along its axes (offset channel 0 is y, 1 is x).
        flipped = torch.tensor([flipped_axes(k) for k in range(len(FLIPS))], device=x.device)
        offsets = torch.where(flipped[:, :, None, None], -offsets.float(), offsets.float())
        prob = mean_unflipped(torch.sigmoid(score.float()))
        return torch.logit(prob, eps=1e-6), mean_unflipped(offsets), dense

    def _view_masks(
        self, dense: torch.Tensor, locs: torch.Tensor, shape: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask probabilities (N, S, S) and pixel origins of ``locs``, averaged over the views in ``dense``.

        Each view predicts in its own window, centred on its own (mirrored)
        location as in training; mapped back, that window can sit one grid
        cell off the unflipped one, so each pixel averages the views that cover it.
        """
        logits, origins = self.seghead(dense[0], locs)
        total = torch.sigmoid(logits.float())
        if len(dense) == 1:
            return total, origins
        count = torch.ones_like(total)
        n, size = len(locs), self.seghead.window_px
        extent = torch.tensor(shape, device=locs.device)
        r = torch.arange(size, device=locs.device)
        idx = torch.arange(n, device=locs.device)[:, None, None].expand(n, size, size)
        for k in range(1, len(FLIPS)):
            axes = torch.tensor(flipped_axes(k), device=locs.device)
            logits, v_org = self.seghead(dense[k], torch.where(axes, extent - 1 - locs, locs))
            prob = unflip(torch.sigmoid(logits.float()), k)
            # the view's window in the unflipped frame, relative to the unflipped window
            shift = torch.where(axes, extent - v_org - size, v_org) - origins  # (N, 2), multiples of the stride
            ys, xs = r[None, :] + shift[:, :1], r[None, :] + shift[:, 1:]  # canonical coords of the view's pixels
            oky, okx = (ys >= 0) & (ys < size), (xs >= 0) & (xs < size)
            ok = oky[:, :, None] & okx[:, None, :]
            yy = ys.clamp(0, size - 1)[:, :, None].expand(n, size, size)
            xx = xs.clamp(0, size - 1)[:, None, :].expand(n, size, size)
            at, values = (idx[ok], yy[ok], xx[ok]), prob[ok]
            total.index_put_(at, values, accumulate=True)
            count.index_put_(at, torch.ones_like(values), accumulate=True)
        return total / count, origins

    def _predict(self, image: torch.Tensor, chunk: int, augment: bool, forward: DenseRunner | None) -> Instances:
        if image.ndim == 3:
            image = image[None]
        h, w = image.shape[-2:]
        ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
        x = F.pad(image, (0, pw, 0, ph)) if ph or pw else image
        score, offsets, dense = self._dense_outputs(x, augment, forward)
        locs, scores = decode_locations(score, offsets, STRIDE, **self._decode_kwargs())
        _warn_if_capped(len(locs), self.config.lpn.max_count)
        inside = (locs[:, 0] >= 0) & (locs[:, 0] <= h - 1) & (locs[:, 1] >= 0) & (locs[:, 1] <= w - 1)
        locs, scores = locs[inside], scores[inside]
        size = self.seghead.window_px
        if len(locs) == 0:
            return Instances.empty((size, size))
        masks, origins = [], []
        for k in range(0, len(locs), chunk):
            prob, org = self._view_masks(dense, locs[k : k + chunk], tuple(x.shape[-2:]))
            masks.append(prob.cpu())
            origins.append(org.cpu())
        return Instances(
            locs.cpu().numpy().astype(np.float32),
            scores.cpu().numpy().astype(np.float32),
            torch.cat(masks).numpy(),
            torch.cat(origins).numpy().astype(np.int64),
        )


def _warn_if_capped(n: int, cap: int) -> None:
    """A :class:`~lociseg.errors.ResultWarning` when a tile's decoded cells reached ``lpn.max_count``."""
    if n >= cap:
        warnings.warn(
            f"a tile reached the model's cap of {cap} cells (lpn.max_count): cells beyond it are missing; "
            "use a smaller --tile-size",
            ResultWarning,
            stacklevel=3,
        )

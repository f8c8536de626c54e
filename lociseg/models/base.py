"""The contract every segmentation model type implements.

The generic training loop (:mod:`lociseg.train`) and prediction code
(:mod:`lociseg.predict`) only talk to models through this interface, so LACSS
and the U-Net baseline share datasets, ``train``, ``segment`` and ``evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import Config, bounded
from ..errors import ConfigError
from ..structures import Instances


@dataclass
class InputSpec(Config):
    """How raw images are turned into model input; stored in every model config.

    Attributes
    ----------
    channels : list of str
        Channel names the model was trained on, in order (e.g. ``["actin", "DNA"]``);
        informative, and used to pick channels by name when the image has them.
    in_channels : int
        Number of input channels the network takes.
    normalize_low, normalize_high : float
        Per-channel percentiles mapped to 0 and 1.
    target_diameter : float
        Cell diameter (px) the model was trained at; images are rescaled by
        ``target_diameter / diameter`` before prediction.
    scale_range : list of float
        ``[low, high]``: cell diameters (px) the model was trained to segment
        as they are (training at a range of scales). An image whose cells are
        in this range is not resized, others only into the range; empty (the
        default) resizes every image to ``target_diameter``.
    optional : list of str
        Channels (of ``channels``, at its end) the model can do without: an
        image or training set that lacks them gets planes of zeros, the
        "absent stain" case the model saw in training (e.g. ``["nucleus"]``
        for a cell model that also takes phase contrast alone).
    """

    channels: list[str] = field(default_factory=list)
    in_channels: int = bounded(2, ge=1)
    normalize_low: float = bounded(1.0, ge=0, le=100)
    normalize_high: float = bounded(99.8, ge=0, le=100)
    target_diameter: float = bounded(32.0, gt=0)
    scale_range: list[float] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)

    def missing_ok(self, have: int) -> bool:
        """Whether an input of ``have`` channels may be completed with zero planes."""
        lack = self.in_channels - have
        tail = [c.lower() for c in self.channels[len(self.channels) - lack :]] if lack > 0 else []
        return 0 < lack == len(tail) and set(tail) <= {c.lower() for c in self.optional}

    def validate(self, where: str = "") -> None:
        """The normalisation percentiles must be in order; a scale range is two increasing positive sizes."""
        pre = f"{where}." if where else ""
        rng = self.scale_range
        if rng and not (len(rng) == 2 and 0 < rng[0] <= self.target_diameter <= rng[1]):
            raise ConfigError(
                f"{pre}scale_range must be [low, high] with 0 < low <= target_diameter <= high, got {rng}"
            )
        if self.normalize_low >= self.normalize_high:
            raise ConfigError(
                f"{pre}normalize_low must be < {pre}normalize_high, got {self.normalize_low} >= {self.normalize_high}"
            )


class ModelConfig(Config):
    """Base of model configs: what the generic training loop may ask a config.

    Subclasses are dataclasses with an ``input`` field (:class:`InputSpec`).
    """

    @property
    def weakly_supervised(self) -> bool:
        """Whether the model trains from weak annotations (points, foreground) instead of instance labels."""
        return False

    @property
    def reads_cells(self) -> bool:
        """Whether weak training batches carry the machine-made cells (``cells``, ``cells_depth``)."""
        return False


class SegmentationModel(nn.Module):
    """Base class of lociseg models.

    Subclasses set ``self.config`` (a :class:`lociseg.config.Config` with an
    ``input`` field of type :class:`InputSpec`) and
    implement :meth:`training_loss` and :meth:`predict_instances`.

    Batch format (from :func:`lociseg.train.collate`), all tensors on the
    model's device, images already normalised and rescaled to model scale:

    ``image``       float32 (B, C, H, W)
    ``labels``      int64 (B, H, W) instance ids, 0 = background, or absent (weak)
    ``points``      list of B float32 (N_b, 2) tensors, cell locations (y, x)
    ``foreground``  float32 (B, H, W) in [0, 1], or absent
    ``valid``       float32 (B, H, W), 0 where pixels are padding/ignored
    """

    config: Any

    def diagnostics(self, batch: dict[str, Any], step: int = 0) -> dict[str, float]:
        """Health statistics of the model on a training batch, logged as ``diag_*`` columns.

        The training loop calls this every ``optim.log_every`` steps and feeds
        the result to the collapse monitor when :meth:`collapse_checks` asks
        for one. The default has nothing to report.
        """
        return {}

    def collapse_checks(self) -> dict[str, Any] | None:
        """Settings of :class:`lociseg.train.diagnostics.CollapseMonitor` for :meth:`diagnostics`, or None (no checks)."""
        return None

    def training_loss(self, batch: dict[str, Any], step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar loss and a dict of named components (floats) for logging."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_instances(self, image: torch.Tensor, *, augment: bool = False) -> Instances:
        """Predict instances on one normalised image (1, C, H, W) at model scale.

        ``augment``: average the predictions of the four flips of the image
        (:mod:`lociseg.models.flips`).
        """
        raise NotImplementedError

"""3-class U-Net baseline (background / interior / boundary), issue 5.

The network predicts, per pixel, background, cell interior and cell boundary;
instances are the connected interior regions grown back over the cell area
(:func:`lociseg.models.semantic.three_class_to_labels`). This is the
baseline of the BBBC039 nucleus-segmentation study (Caicedo et al. 2019),
whose recipe (lr 0.01, batch 5, random 256x256 crops, boundary weighted up)
is what ``benchmarks/compare_models.py`` trains it with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded
from ..errors import ConfigError
from ..losses.semantic import (
    INTERIOR,
    class_weighted_cross_entropy,
    foreground_cross_entropy,
    labels_to_3class_torch,
)
from ..structures import Instances
from .base import InputSpec, ModelConfig, SegmentationModel
from .flips import flip_views, mean_unflipped
from .semantic import three_class_to_instances

NUM_CLASSES = 3


@dataclass
class UNetConfig(ModelConfig):
    """Configuration of the U-Net baseline.

    Attributes
    ----------
    input : InputSpec
        Channels (``input.in_channels`` is the network's input width),
        normalisation and model scale (shared with every model).
    base_channels : int
        Width of the first level; each level below doubles it.
    depth : int
        Number of down-sampling steps of the ``standard`` preset (levels = depth + 1).
    preset : {"standard", "expanded"}
        ``expanded`` adds two more down/up levels (at the default width those
        are 1024 and 2048 channels), the "expanded U-Net" of the seed study.
    batch_norm : bool
        Batch normalisation after every convolution.
    boundary_width : int
        Thickness (px, at model scale) of the boundary class in the targets.
    class_weights : list of 3 floats
        Cross-entropy weights of background, interior, boundary.
    interior_threshold, foreground_threshold : float
        Instance extraction thresholds on the predicted probabilities.
    min_size : int
        Smallest object kept at prediction, in pixels at model scale.
    weak_point_radius : float
        Weak batches (no labels): pixels within this radius of a point are
        trained as interior (seeds), besides the foreground/background loss.
        0 disables the point term.
    """

    input: InputSpec = field(default_factory=InputSpec)
    base_channels: int = bounded(32, ge=1)
    depth: int = bounded(4, ge=1)
    preset: Literal["standard", "expanded"] = "standard"
    batch_norm: bool = True
    boundary_width: int = bounded(2, ge=0)
    class_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 10.0])
    interior_threshold: float = bounded(0.5, ge=0, le=1)
    foreground_threshold: float = bounded(0.5, ge=0, le=1)
    min_size: int = bounded(16, ge=0)
    weak_point_radius: float = bounded(3.0, ge=0)

    def __post_init__(self) -> None:
        if len(self.class_weights) != NUM_CLASSES:
            raise ConfigError(
                f"unet.class_weights needs 3 values (background, interior, boundary), got {self.class_weights}"
            )
        if self.depth < 1 or self.base_channels < 1:
            raise ConfigError("unet.depth and unet.base_channels must be >= 1")

    @property
    def widths(self) -> list[int]:
        """Channels of every level, top to bottom."""
        levels = self.depth + 1 + (2 if self.preset == "expanded" else 0)
        return [self.base_channels * 2**i for i in range(levels)]

    @classmethod
    def expanded(cls, **kwargs: Any) -> UNetConfig:
        """The ``expanded`` preset (two extra levels of 1024 and 2048 channels at default width)."""
        return cls(preset="expanded", **kwargs)


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional) batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, batch_norm: bool = True):
        layers: list[nn.Module] = []
        for c in (cin, cout):
            layers.append(nn.Conv2d(c, cout, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """Plain U-Net: max-pool encoder, transposed-conv decoder with skip connections.

    Parameters
    ----------
    in_channels : int
    widths : list of int
        Channels per level, top to bottom (``len(widths) - 1`` down-samplings).
    num_classes : int, optional
    batch_norm : bool, optional

    Input height/width need not be multiples of ``2**(levels-1)``: the input
    is padded (reflect) and the output cropped back.
    """

    def __init__(self, in_channels: int, widths: list[int], num_classes: int = NUM_CLASSES, batch_norm: bool = True):
        super().__init__()
        self.widths = list(widths)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in self.widths:
            self.down.append(ConvBlock(cin, w, batch_norm))
            cin = w
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for w_low, w_high in zip(self.widths[:0:-1], self.widths[-2::-1]):
            self.upsample.append(nn.ConvTranspose2d(w_low, w_high, 2, stride=2))
            self.up.append(ConvBlock(2 * w_high, w_high, batch_norm))
        self.head = nn.Conv2d(self.widths[0], num_classes, 1)

    @property
    def multiple(self) -> int:
        """Input sizes that need no padding are multiples of this."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (B, num_classes, H, W)."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up):
            x = upsample(x)
            x = block(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)[..., :h, :w]


class UNetModel(SegmentationModel):
    """The U-Net baseline as a :class:`~lociseg.models.base.SegmentationModel`.

    Training (:meth:`training_loss`):

    * batches with ``labels``: 3-class targets (:func:`~lociseg.losses.semantic.labels_to_3class`)
      and class-weighted cross entropy; pixels with ``valid == 0`` are ignored.
    * weak batches (``foreground`` and/or ``points``, no ``labels``): the
      output is trained as a foreground model -- binary cross entropy of
      ``P(interior) + P(boundary)`` against the foreground -- plus, when
      points are given and ``weak_point_radius > 0``, cross entropy pulling
      small discs around the points to *interior* (they become the seeds).
      The boundary class gets no direct supervision then, so touching cells
      may merge; this mode is meant as a foreground model for weak training.

    Prediction (:meth:`predict_instances`): softmax, then
    :func:`~lociseg.models.semantic.three_class_to_instances` (score = mean
    interior probability of each object).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = config if config is not None else UNetConfig()
        self.config = config
        self.net = UNet(config.input.in_channels, config.widths, NUM_CLASSES, config.batch_norm)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 3, H, W) of a normalised image batch (B, C, H, W)."""
        return self.net(image)

    def training_loss(self, batch: dict[str, Any], step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        image = batch["image"]
        logits = self.net(image)
        valid = batch.get("valid")
        labels = batch.get("labels")
        if labels is not None:
            target = labels_to_3class_torch(labels, self.config.boundary_width)
            if valid is not None:
                target = target.masked_fill(valid <= 0, -1)
            loss = class_weighted_cross_entropy(logits, target, self.config.class_weights, ignore_index=-1)
            return loss, {"ce": float(loss.detach())}
        fg = batch.get("foreground")
        points = batch.get("points")
        if fg is None and points is None:
            raise ValueError("U-Net training batch needs 'labels', or 'foreground'/'points' for weak training")
        parts: dict[str, torch.Tensor] = {}
        if fg is not None:
            parts["fg"] = foreground_cross_entropy(logits, fg, valid)
        if points is not None and self.config.weak_point_radius > 0:
            seeds = _point_discs(points, logits.shape[-2:], self.config.weak_point_radius, logits.device)
            target = torch.where(seeds, INTERIOR, -1)
            if valid is not None:
                target = target.masked_fill(valid <= 0, -1)
            parts["seed"] = class_weighted_cross_entropy(logits, target, [1.0, 1.0, 1.0], ignore_index=-1)
        loss = sum(parts.values())
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def predict_probabilities(self, image: torch.Tensor, *, augment: bool = False) -> np.ndarray:
        """Softmax class probabilities (3, H, W) of one normalised image (1, C, H, W).

        ``augment`` averages the probabilities of the four flips of the image.
        """
        if image.ndim == 3:
            image = image[None]
        if augment:
            return mean_unflipped(torch.softmax(self.net(flip_views(image)).float(), dim=1)).cpu().numpy()
        return torch.softmax(self.net(image), dim=1)[0].float().cpu().numpy()

    @torch.no_grad()
    def predict_instances(self, image: torch.Tensor, *, augment: bool = False) -> Instances:
        was_training = self.training
        self.eval()
        try:
            probs = self.predict_probabilities(image, augment=augment)
        finally:
            self.train(was_training)
        c = self.config
        return three_class_to_instances(
            probs,
            interior_threshold=c.interior_threshold,
            foreground_threshold=c.foreground_threshold,
            min_size=c.min_size,
        )


def _point_discs(
    points: list[torch.Tensor], shape: tuple[int, int], radius: float, device: torch.device
) -> torch.Tensor:
    """Boolean (B, H, W) masks of discs of ``radius`` around each image's points (y, x)."""
    h, w = int(shape[0]), int(shape[1])
    out = torch.zeros((len(points), h, w), dtype=torch.bool, device=device)
    r = int(np.ceil(radius))
    dy, dx = torch.meshgrid(
        torch.arange(-r, r + 1, device=device), torch.arange(-r, r + 1, device=device), indexing="ij"
    )
    disc = (dy**2 + dx**2) <= radius**2
    dy, dx = dy[disc], dx[disc]
    for b, pts in enumerate(points):
        if pts is None or len(pts) == 0:
            continue
        p = torch.round(pts.to(device)).long()
        ys = (p[:, :1] + dy[None]).reshape(-1)
        xs = (p[:, 1:2] + dx[None]).reshape(-1)
        ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        out[b, ys[ok], xs[ok]] = True
    return out

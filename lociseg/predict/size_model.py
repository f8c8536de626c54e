"""Estimate the cell diameter of an image in one cheap pass of the network's encoder.

A network trained on cells about ``target_diameter`` px across responds to
the size of what it sees: its encoder's pooled features change steadily with
the cells' size. A :class:`SizeModel` is a ridge regression from those
features to ``log(diameter)``, fitted after training for one network
(:func:`fit_size_model`, run by ``benchmarks/fit_size_model.py``) on its
training images resampled at random zooms, and stored next to the weights
(:data:`SIZE_FILE`). At prediction time the encoder (no FPN, no heads) sees
a few fixed views of the image's centre (:data:`VIEWS`): one pass, a small
fraction of the cost of segmenting, in place of the zoom ladder of
:mod:`~lociseg.predict.scale_search`, which stays the fallback for models
without a size file and for estimates the regression is unsure of.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..io.files import atomic_write
from ..transforms import rescale_image
from .scale_search import HIGH_SCORE, search_window

SIZE_FILE = "size_model.json"
"""File name of a model's size regression, in its checkpoint folder."""

VIEWS: tuple[tuple[float, int], ...] = ((1.0, 256), (0.25, 256))
"""(zoom, side) of each view: the central ``side / zoom`` px of the image, rescaled by ``zoom``.

The native view resolves small cells, the quarter view sees large ones whole
(and gives context on a sparse field); each costs one 256^2 encoder pass.
"""

FORMAT = 1
ALIGN = 32

MASK_TOLERANCE = 1.5
"""Ratio of the diameter the masks imply to the one used at which :func:`scale_agreement` reaches 0."""

CHECK_SIDE = 512
"""Side (px) of the central window of a larger image on which ``segment`` checks the one-pass estimate."""

RESEGMENT = 1.2
"""Ratio of the corrected to the used diameter beyond which :meth:`~lociseg.predict.api.Segmenter.segment` segments again."""


@dataclass
class SizeModel:
    """Ridge regression from pooled encoder features to log cell diameter.

    Attributes
    ----------
    views : list of [zoom, side]
        The views the features were computed on (:func:`image_features`).
    mean, std : list of float
        Feature standardisation.
    coef : list of float
        Weights on the standardised features.
    intercept : float
    alpha : float
        Ridge penalty chosen by grouped cross-validation.
    cv_error : float
        Cross-validated root-mean-square error of log(diameter) on the training samples.
    diameter_range : [float, float]
        Smallest and largest diameter (px) fitted; estimates far outside it are unsure.
    sets : list of str
        Data sets it was fitted on.
    samples : int
    mask_bias, mask_slope : float
        How the network's masks follow the scale it is shown:
        ``log(m / d) = mask_bias + mask_slope * log(k)`` for the median
        confident-mask diameter ``m`` of cells of diameter ``d`` segmented as
        if they were ``k * d`` (:func:`fit_mask_response`; slope 1 would be
        masks that ignore the scale asked for, 0 masks that always fit the cells).
    """

    views: list[list[float]]
    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    alpha: float
    cv_error: float
    diameter_range: list[float]
    sets: list[str] = field(default_factory=list)
    samples: int = 0
    mask_bias: float = 0.0
    mask_slope: float = 0.5
    format: int = FORMAT

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Diameters (px) of an (N, F) or (F,) feature array."""
        x = (np.atleast_2d(np.asarray(features, np.float64)) - np.asarray(self.mean)) / np.asarray(self.std)
        return np.exp(x @ np.asarray(self.coef) + self.intercept)

    def in_range(self, diameter: float, slack: float = 1.5) -> bool:
        """Whether ``diameter`` lies within the fitted range widened by ``slack`` on each side."""
        lo, hi = self.diameter_range
        return math.isfinite(diameter) and lo / slack <= diameter <= hi * slack

    def save(self, folder: str | os.PathLike) -> Path:
        """Write :data:`SIZE_FILE` into ``folder`` atomically; returns its path."""
        path = Path(folder) / SIZE_FILE
        atomic_write(path, json.dumps(asdict(self)) + "\n", overwrite=True)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SizeModel | None:
        """The size model stored in a checkpoint folder; None when it has none."""
        path = Path(folder) / SIZE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            model = cls(**data)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"{path}: unreadable size model ({e}); delete it or refit it") from e
        if model.format != FORMAT or len(model.coef) != len(model.mean):
            raise ConfigError(f"{path}: size model format {model.format} not understood; refit it")
        return model


def view_crops(
    image: np.ndarray,
    views: Sequence[Sequence[float]] = VIEWS,
    zoom: float = 1.0,
    centre: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """The views of a normalised (C, H, W) image as the network sees them.

    View ``(z, side)`` is the window of ``side / (z * zoom)`` px around
    ``centre`` (default the image centre) rescaled by ``z * zoom``, cut to a
    multiple of 32 px; ``zoom`` stands for resampling the whole image first
    (how training samples at random zooms are made without materialising them).
    """
    h, w = image.shape[-2:]
    cy, cx = (h / 2, w / 2) if centre is None else centre
    out = []
    for z, side in views:
        f = float(z) * zoom
        n = side / f
        y0 = int(round(min(max(cy - n / 2, 0), max(h - n, 0))))
        x0 = int(round(min(max(cx - n / 2, 0), max(w - n, 0))))
        win = rescale_image(image[:, y0 : y0 + int(math.ceil(n)), x0 : x0 + int(math.ceil(n))], f)
        hh, ww = (max(ALIGN, min(int(side), s) // ALIGN * ALIGN) for s in win.shape[-2:])
        if win.shape[1] < hh or win.shape[2] < ww:  # smaller than one network cell: pad by reflection
            win = np.pad(win, ((0, 0), (0, max(0, hh - win.shape[1])), (0, max(0, ww - win.shape[2]))), "reflect")
        out.append(np.ascontiguousarray(win[:, :hh, :ww]))
    return out


@torch.inference_mode()
def image_features(
    encoder: torch.nn.Module, crops: Sequence[np.ndarray], device: torch.device | str = "cpu"
) -> np.ndarray:
    """Concatenated per-channel mean and standard deviation of each encoder stage over each view."""
    feats = []
    for crop in crops:
        x = torch.from_numpy(np.ascontiguousarray(crop, np.float32))[None].to(device)
        for stage in encoder(x.contiguous(memory_format=torch.channels_last)):
            s = stage[0].float().flatten(1)
            feats.append(torch.cat([s.mean(1), s.std(1, unbiased=False)]).cpu().numpy())
    return np.concatenate(feats)


def has_encoder(model: torch.nn.Module) -> bool:
    """Whether the network exposes the multi-stage ``backbone`` the size model reads."""
    return isinstance(getattr(model, "backbone", None), torch.nn.Module)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge weights and intercept of standardised ``x`` (N, F) against ``y`` (dual form: N is the smaller)."""
    ym = float(y.mean())
    gram = x @ x.T
    a = np.linalg.solve(gram + alpha * np.eye(len(x)), y - ym)
    return x.T @ a, ym


def fit_size_model(
    features: np.ndarray,
    diameters: np.ndarray,
    groups: np.ndarray,
    *,
    views: Sequence[Sequence[float]] = VIEWS,
    alphas: Sequence[float] = (1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0),
    folds: int = 5,
    sets: Sequence[str] = (),
) -> SizeModel:
    """Fit log(diameter) on (N, F) ``features``, choosing the ridge penalty by cross-validation.

    Parameters
    ----------
    features : (N, F) ndarray
        :func:`image_features` of the training samples.
    diameters : (N,) ndarray
        Their median cell diameters (px, > 0).
    groups : (N,) int ndarray
        Source image of each sample: the folds keep an image's samples together.
    views : sequence of (zoom, side)
        Recorded with the model (:func:`view_crops`).
    alphas : sequence of float
        Ridge penalties tried.
    folds : int
    sets : sequence of str
        Recorded provenance.

    Returns
    -------
    SizeModel
    """
    x = np.asarray(features, np.float64)
    y = np.log(np.asarray(diameters, np.float64))
    groups = np.asarray(groups)
    if len(x) < 2 * folds or not np.isfinite(y).all():
        raise ConfigError(f"a size model needs at least {2 * folds} samples with a finite diameter, got {len(x)}")
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-8] = 1.0
    z = (x - mean) / std
    fold = np.unique(groups, return_inverse=True)[1] % folds
    errors = []
    for alpha in alphas:
        sq = 0.0
        for k in range(folds):
            test = fold == k
            if not test.any() or test.all():
                continue
            w, b = _ridge(z[~test], y[~test], alpha)
            sq += float(((z[test] @ w + b - y[test]) ** 2).sum())
        errors.append(math.sqrt(sq / len(y)))
    best = int(np.argmin(errors))
    w, b = _ridge(z, y, alphas[best])
    d = np.exp(y)
    return SizeModel(
        views=[[float(a), float(s)] for a, s in views],
        mean=mean.tolist(),
        std=std.tolist(),
        coef=w.tolist(),
        intercept=b,
        alpha=float(alphas[best]),
        cv_error=float(errors[best]),
        diameter_range=[float(d.min()), float(d.max())],
        sets=list(sets),
        samples=len(y),
    )


def estimate_diameter(
    size_model: SizeModel, encoder: torch.nn.Module, image: np.ndarray, device: torch.device | str = "cpu"
) -> float:
    """Cell diameter (px) of a normalised (C, H, W) image from its central views, in one encoder pass each."""
    crops = view_crops(image, size_model.views)
    return float(size_model.predict(image_features(encoder, crops, device))[0])


def views_window(shape: tuple[int, int], views: Sequence[Sequence[float]] = VIEWS) -> tuple[slice, slice]:
    """The central window of an (H, W) image that the views read (the widest view's extent)."""
    return search_window(shape, int(math.ceil(max(side / z for z, side in views))))


def median_mask_diameter(labels: np.ndarray, scores: np.ndarray, min_cells: int = 3) -> float:
    """Median equivalent diameter of the confident cells (score >= HIGH_SCORE) of a segmentation; NaN with too few."""
    area = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=len(scores) + 1)[1 : len(scores) + 1]
    keep = (np.asarray(scores) >= HIGH_SCORE) & (area > 0)
    if keep.sum() < min_cells:
        return float("nan")
    return 2 * math.sqrt(float(np.median(area[keep])) / math.pi)


def refine_diameter(size_model: SizeModel, measured: float, used: float, limit: float = 2.0) -> float:
    """The cell diameter implied by masks of median diameter ``measured`` made at diameter ``used``.

    Inverts the mask response of the size model (``mask_bias``,
    ``mask_slope``); the correction is at most a factor ``limit``. NaN when
    ``measured`` is.
    """
    if not math.isfinite(measured):
        return float("nan")
    log_k = (math.log(measured / used) - size_model.mask_bias) / (size_model.mask_slope - 1)
    return float(used / math.exp(float(np.clip(log_k, -math.log(limit), math.log(limit)))))


def fit_mask_response(scale: np.ndarray, ratio: np.ndarray) -> tuple[float, float]:
    """(bias, slope) of ``log(ratio) = bias + slope * log(scale)`` by least squares over the finite pairs.

    ``scale`` is the factor ``k`` between the diameter asked for and the true
    one, ``ratio`` the median mask diameter over the true one.
    """
    k, r = np.asarray(scale, np.float64), np.asarray(ratio, np.float64)
    ok = np.isfinite(r) & (r > 0) & (k > 0)
    if ok.sum() < 3 or np.ptp(np.log(k[ok])) == 0:
        raise ConfigError("fitting the mask response needs at least three segmentations at two scales")
    slope, bias = np.polyfit(np.log(k[ok]), np.log(r[ok]), 1)
    return float(bias), float(np.clip(slope, 0.0, 0.9))


def scale_agreement(used: float, implied: float) -> float:
    """0..1: 1 when the masks imply the diameter used, falling linearly in log-ratio to 0 at :data:`MASK_TOLERANCE`; 0 for NaN."""
    if not (math.isfinite(implied) and implied > 0):
        return 0.0
    return float(np.clip(1 - abs(math.log(implied / used)) / math.log(MASK_TOLERANCE), 0, 1))

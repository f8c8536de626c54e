"""Find the scale of an image's cells by running the model at a ladder of zooms.

A detector trained on cells about ``target_diameter`` px across is most
confident when it sees cells at that size: shown cells much larger it finds
low-scoring fragments (or nothing), shown cells much smaller it merges or
misses them. :func:`search_scale` therefore rescales a few windows of the
image by each factor of a geometric ladder, runs only the cheap location
pass of the model on them, and scores each zoom by the confidence of its
detections; the best zoom, refined by a parabola in log-zoom, is within a
factor of about 1.5 of the right one (the detector's confidence peaks
slightly below its training size). Near that zoom the model's masks are
trustworthy, so the full model is then run on the same windows and the zoom
moved until the median mask is ``target_diameter`` across; the cell diameter
is ``target_diameter / factor``.

The windows are a fixed size at model scale (``window`` px), so each zoom
costs the same; they are the image's brightest grid cells at that zoom
(where the cells are, on a sparse field), and a zoom that shrinks the whole
image below one window sees the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..structures import Instances
from ..transforms import rescale_image

Locate = Callable[[np.ndarray], Sequence[tuple[np.ndarray, np.ndarray]]]
"""Maps a normalised (B, C, S, S) float32 batch at model scale to (locations, scores) per image."""

HIGH_SCORE = 0.5
"""Detection score counted as confident (the shipped models score their cells about 0.4-0.9)."""

Predict = Callable[[np.ndarray], Instances]
"""Full prediction (with masks) of one normalised (C, h, w) tile at model scale."""

SEARCH_SIDE = 2048
"""Larger images are searched on their central window of this side: the search reads (and normalises) only it."""


@dataclass
class ScaleEstimate:
    """The outcome of :func:`search_scale`.

    Attributes
    ----------
    diameter : float
        Estimated cell diameter in image pixels (NaN when nothing was found).
    factor : float
        Rescaling factor to model scale, ``target_diameter / diameter``.
    confidence : float
        0..1: the share of detections scoring at least :data:`HIGH_SCORE` at
        the chosen zoom (with ``predict``); without it, how much better the
        chosen zoom scores than the best zoom at least a factor of 2 away.
    factors, quality, counts : ndarray
        Every zoom tried, its criterion and its number of detections (empty for the one-pass estimate).
    method : str
        ``"search"`` (this ladder) or ``"size-model"`` (:mod:`~lociseg.predict.size_model`).
    """

    diameter: float
    factor: float
    confidence: float
    factors: np.ndarray = field(repr=False)
    quality: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    method: str = "search"

    @property
    def found(self) -> bool:
        return math.isfinite(self.diameter)

    def to_meta(self) -> dict:
        """JSON-ready summary for the output metadata."""
        return {
            "method": self.method,
            "diameter": round(float(self.diameter), 2) if self.found else None,
            "confidence": round(float(self.confidence), 3),
            "zooms": [round(float(f), 4) for f in self.factors],
            "quality": [round(float(q), 4) for q in self.quality],
        }


def ladder(target_diameter: float, min_diameter: float, max_diameter: float, step: float) -> np.ndarray:
    """Factors ``target / d`` for diameters from ``max_diameter`` down to ``min_diameter``, a factor ``step`` apart."""
    lo, hi = math.log(target_diameter / max_diameter), math.log(target_diameter / min_diameter)
    n = math.ceil((hi - lo) / math.log(step) - 1e-9) + 1
    return np.exp(np.linspace(lo, lo + (n - 1) * math.log(step), n))


def search_window(shape: tuple[int, int], side: int = SEARCH_SIDE) -> tuple[slice, slice]:
    """The central ``side`` x ``side`` window of an (H, W) image (the whole of a smaller one), where its scale is searched.

    The search looks at a few small windows whatever the image size; taking
    them from this window bounds its time and memory on a whole slide.
    """
    h, w = min(int(shape[0]), side), min(int(shape[1]), side)
    y, x = (int(shape[0]) - h) // 2, (int(shape[1]) - w) // 2
    return slice(y, y + h), slice(x, x + w)


def brightness_table(image: np.ndarray) -> np.ndarray:
    """Summed-area table (H+1, W+1) of the channel maximum of a normalised (C, H, W) image clipped to [0, 1]."""
    bright = np.clip(np.asarray(image).max(0), 0, 1)
    table = np.zeros((bright.shape[0] + 1, bright.shape[1] + 1))
    inner = table[1:, 1:]  # accumulated in float64 in place: no float64 copies of the image
    np.cumsum(bright, axis=0, dtype=np.float64, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    return table


def pick_windows(table: np.ndarray, size: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of the ``count`` brightest cells of a grid of ``size`` px windows.

    ``table`` is the image's :func:`brightness_table`; on a sparse field the
    windows land where the cells are.
    """
    h, w = table.shape[0] - 1, table.shape[1] - 1
    sy, sx = min(size, h), min(size, w)
    ny, nx = max(1, h // sy), max(1, w // sx)
    # centre the grid; the margins it leaves are narrower than a window
    y0 = [(h - ny * sy) // 2 + i * sy for i in range(ny)]
    x0 = [(w - nx * sx) // 2 + j * sx for j in range(nx)]
    if ny * nx <= count:
        return [(y, x) for y in y0 for x in x0]
    ys, xs = np.array(y0)[:, None], np.array(x0)[None, :]
    total = table[ys + sy, xs + sx] - table[ys, xs + sx] - table[ys + sy, xs] + table[ys, xs]
    order = np.argsort(-total.ravel(), kind="stable")[:count]
    return [(y0[k // nx], x0[k % nx]) for k in order]


def zoom_quality(scores: np.ndarray, k: int) -> float:
    """Criterion of one zoom: the mean of the ``k`` highest detection scores, missing ones counting 0."""
    top = np.sort(np.asarray(scores, np.float64))[::-1][:k]
    return float(top.sum() / k)


def crops_at(image: np.ndarray, table: np.ndarray, factor: float, window: int, windows: int) -> list[np.ndarray]:
    """The ``windows`` brightest ``window / factor`` px windows of a (C, H, W) image, rescaled by ``factor``."""
    size = max(1, round(window / factor))
    return [rescale_image(image[:, y : y + size, x : x + size], factor) for y, x in pick_windows(table, size, windows)]


def mask_diameter(instances: Instances, shape: tuple[int, int], margin: float, min_score: float = 0.5) -> np.ndarray:
    """Equivalent diameters ``2 sqrt(area / pi)`` of the masks (probability > 0.5) of confident instances.

    Instances located within ``margin`` px of the tile border (cells cut by
    the window) are left out.
    """
    if not len(instances):
        return np.zeros(0)
    loc = np.asarray(instances.locations)
    inner = ((loc >= margin) & (loc <= np.array(shape) - 1 - margin)).all(1) & (
        np.asarray(instances.scores) >= min_score
    )
    area = (np.asarray(instances.masks)[inner] > 0.5).sum((1, 2))
    return 2 * np.sqrt(area[area > 0] / np.pi)


def search_scale(
    locate: Locate,
    image: np.ndarray,
    target_diameter: float,
    *,
    predict: Predict | None = None,
    min_diameter: float = 4.0,
    max_diameter: float = 256.0,
    step: float = 2.0,
    window: int = 128,
    windows: int = 4,
    top_k: int = 8,
    rounds: int = 3,
) -> ScaleEstimate:
    """Estimate the cell diameter of a normalised (C, H, W) image.

    Two stages: the zoom ladder (:func:`zoom_quality` of the location pass
    at each factor) finds the neighbourhood of the right scale, within a
    factor of about 1.5; then, when ``predict`` is given, the full model is
    run on the windows at that zoom and the zoom is moved until the median
    size of its masks matches ``target_diameter`` (secant steps in log-zoom,
    at most ``rounds`` measurements, stopping when a step is under 5 %). A model seen
    near its training scale measures cells well; far from it, its masks
    stay near the training size whatever the cells, which is why the
    ladder comes first.

    Parameters
    ----------
    locate : callable
        Location pass of the model (:data:`Locate`).
    image : (C, H, W) float ndarray
        Normalised image.
    target_diameter : float
        Cell diameter (px) the model was trained at.
    predict : callable, optional
        Full prediction of one tile (:data:`Predict`), for the mask-size stage.
    min_diameter, max_diameter : float, optional
        Range of diameters (image px) searched.
    step : float, optional
        Ratio between neighbouring zooms of the ladder.
    window : int, optional
        Side of the windows at model scale.
    windows : int, optional
        Windows per zoom.
    top_k : int, optional
        Detections averaged per zoom (:func:`zoom_quality`).
    rounds : int, optional
        Most mask-size measurements.

    Returns
    -------
    ScaleEstimate
    """
    image = np.asarray(image, np.float32)
    table = brightness_table(image)
    factors = ladder(target_diameter, min_diameter, max_diameter, step)
    quality, counts = _ladder_quality(locate, image, table, factors, window, windows, top_k)
    est = _choose(factors, quality, counts, target_diameter, step)
    if predict is None or not est.found:
        return est
    lo, hi = math.log(target_diameter / max_diameter), math.log(target_diameter / min_diameter)
    # Solve g(x) = 0, x = log zoom, g = log(median mask diameter / target): the masks are pulled
    # towards the training size, so g grows slower than x and a plain fixed-point step stops short;
    # secant steps (slope clipped to a plausible range) converge in two or three measurements.
    xs: list[float] = []
    gs: list[float] = []
    x = math.log(est.factor)
    for _ in range(rounds):
        est.confidence, sizes = _mask_sizes(
            predict, crops_at(image, table, math.exp(x), window, windows), target_diameter
        )
        if len(sizes) < 3:
            break
        xs.append(x)
        gs.append(math.log(np.median(sizes) / target_diameter))
        slope = 1.0
        if len(xs) > 1 and abs(xs[-1] - xs[-2]) > 1e-6:
            slope = float(np.clip((gs[-1] - gs[-2]) / (xs[-1] - xs[-2]), 0.3, 1.5))
        new = float(np.clip(x - np.clip(gs[-1] / slope, -math.log(2), math.log(2)), lo, hi))
        moved = abs(new - x)
        x = new
        if moved < math.log(1.05):
            break
    f = math.exp(x)
    est.factor, est.diameter = f, target_diameter / f
    return est


def _ladder_quality(
    locate: Locate,
    image: np.ndarray,
    table: np.ndarray,
    factors: np.ndarray,
    window: int,
    windows: int,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`zoom_quality` and the number of detections of the location pass at each zoom of the ladder."""
    quality = np.zeros(len(factors))
    counts = np.zeros(len(factors), np.int64)
    for i, f in enumerate(factors):
        crops = crops_at(image, table, f, window, windows)
        batch = np.zeros((len(crops), image.shape[0], window, window), np.float32)
        for b, c in enumerate(crops):
            hh, ww = min(window, c.shape[1]), min(window, c.shape[2])
            batch[b, :, :hh, :ww] = c[:, :hh, :ww]
        scores = [np.asarray(sc, np.float32).ravel() for _, sc in locate(batch)]
        scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        counts[i] = len(scores)
        quality[i] = zoom_quality(scores, top_k)
    return quality, counts


def _mask_sizes(predict: Predict, crops: list[np.ndarray], target_diameter: float) -> tuple[float, np.ndarray]:
    """The share of confident detections in ``crops`` and the diameters of their inner masks."""
    found = [predict(c) for c in crops]
    scores = np.concatenate([np.asarray(i.scores, np.float64) for i in found] or [np.zeros(0)])
    # share of confident detections at the chosen zoom: low on an image the model does not recognise
    confidence = float((scores >= HIGH_SCORE).mean()) if len(scores) else 0.0
    sizes = np.concatenate(
        [mask_diameter(i, c.shape[-2:], min(target_diameter / 2, min(c.shape[-2:]) / 8)) for i, c in zip(found, crops)]
        or [np.zeros(0)]
    )
    return confidence, sizes


def _choose(factors: np.ndarray, quality: np.ndarray, counts: np.ndarray, target: float, step: float) -> ScaleEstimate:
    """Best zoom, refined by a parabola through it and its neighbours in log-zoom; confidence from the runner-up."""
    # ties (a detector sure of everything) go to the zoom nearest native scale
    tied = np.flatnonzero(quality >= quality.max() - 1e-9)
    best = int(tied[np.argmin(np.abs(np.log(factors[tied])))])
    if quality[best] <= 0:
        return ScaleEstimate(float("nan"), float("nan"), 0.0, factors, quality, counts)
    logf = math.log(factors[best])
    if 0 < best < len(factors) - 1:
        a, b, c = quality[best - 1 : best + 2]
        denom = a - 2 * b + c
        if denom < 0:
            logf += 0.5 * (a - c) / denom * math.log(step)
    far = np.abs(np.log(factors) - math.log(factors[best])) > math.log(2) - 1e-9
    rival = float(quality[far].max()) if far.any() else 0.0
    confidence = float(np.clip(1 - rival / quality[best], 0, 1))
    f = math.exp(logf)
    return ScaleEstimate(target / f, f, confidence, factors, quality, counts)

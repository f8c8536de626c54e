"""Training data: images normalised and rescaled once, then random augmented crops.

Every crop is a pure function of ``(seed, step, index in batch)``, so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.nn import functional as F

from ..annotate import weak_from_labels, with_annotations
from ..data import Sample, load_dataset
from ..errors import ConfigError
from ..ops.windows import clip_window
from ..transforms import (
    diameter_from_labels,
    normalize_percentile,
    point_spacing,
    rescale_image,
    rescale_labels,
)
from .config import AugmentConfig, ExperimentConfig

log = logging.getLogger("lociseg.train")


@dataclass
class Prepared:
    """One image at model scale: normalised pixels and whatever annotation it has."""

    name: str
    image: np.ndarray  # float32 (C, H, W)
    labels: np.ndarray | None  # int32 (H, W)
    points: np.ndarray | None  # float32 (N, 2)
    foreground: np.ndarray | None  # float32 (H, W)
    scale: float
    cells: np.ndarray | None = None  # int32 (H, W), machine-made cells (weak territory)
    corrected: np.ndarray | None = None  # int32 (H, W), a person's cells: full labels in weak runs
    reviewed: np.ndarray | None = None  # uint8 (H, W), where ``corrected`` is authoritative


def _channels(spec: list[str]) -> list[int | str] | None:
    if not spec:
        return None
    return [int(c) if str(c).isdigit() else c for c in spec]


def load_samples_for(
    config: ExperimentConfig, specs: list[str], annotations: list[str] | None = None, *, machine: bool = False
) -> list:
    """Samples of the given specs (with weak annotations attached when asked).

    With ``machine`` the samples' labels are replaced by the annotations'
    machine-made cells (``data.label_source: machine``).
    """
    if machine and not annotations:
        raise ConfigError("data.label_source 'machine' needs data.annotations (a 'lociseg annotate' folder per spec)")

    out = []
    for k, spec in enumerate(specs):
        ds, absent = load_optional_channels(spec, _channels(config.data.channels), config.model.input.optional)
        if absent:
            ds = [_with_zero_planes(ds[i], absent) for i in range(len(ds))]
        if annotations:
            if len(annotations) != len(specs):
                raise ConfigError("data.annotations needs one folder per data.train spec")
            if annotations[k] == "from-labels":
                if machine:
                    raise ConfigError("data.label_source 'machine' needs annotation folders, not 'from-labels'")
                out.extend(weak_from_own_labels(list(ds)))
                continue

            ds = with_annotations(ds, annotations[k])
        samples = [ds[i] for i in range(len(ds))]
        out.extend(machine_labels(samples, annotations[k]) if machine else samples)
    return out


def load_optional_channels(spec: str, channels: list | None, optional: list[str]):
    """The data set with the model's channels, and how many trailing optional ones it lacks.

    A set without an optional channel (phase contrast with no nuclear stain
    for a ``["cell", "nucleus"]`` model) is loaded with the others; its
    samples then get zero planes, the "absent stain" the model also learns
    from ``blank_channel_p``.
    """
    try:
        return load_dataset(spec, channels=channels), 0
    except ConfigError:
        names = {c.lower() for c in optional}
        if not channels or not names:
            raise
        keep = list(channels)
        while keep and str(keep[-1]).lower() in names:
            keep.pop()
        if len(keep) == len(channels) or not keep:
            raise
        return load_dataset(spec, channels=keep), len(channels) - len(keep)


def _with_zero_planes(sample, n: int):
    """The sample with ``n`` planes of zeros after its channels."""
    image = np.asarray(sample.image)
    sample.image = np.concatenate([image, np.zeros((n, *image.shape[1:]), image.dtype)])
    return sample


def weak_from_own_labels(samples: list) -> list:
    """Samples with points and foreground derived from their labels (``data.annotations: [from-labels]``)."""
    for s in samples:
        if s.labels is None:
            raise ConfigError(f"{s.name!r}: 'from-labels' weak annotations need labels")
        s.points, s.foreground = weak_from_labels(s.labels)
    return samples


def machine_labels(samples: list, source: str = "in-memory samples") -> list:
    """Samples whose labels are their machine-made cells (``data.label_source: machine``)."""
    for s in samples:
        if s.cells is None:
            raise ConfigError(
                f"{source}: no machine-made cells for {s.name!r} (re-run 'lociseg annotate' with this version)"
            )
        s.labels = s.cells
    return samples


def as_samples(data, what: str) -> list:
    """In-memory training data as :class:`~lociseg.data.Sample` objects.

    ``data`` is a list of samples, or ``(images, labels)``: a sequence of
    (H, W) or (C, H, W) images and one of (H, W) label images (or None for
    unlabelled images; ``labels`` itself None when none has any).
    """
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ConfigError(f"{what}: expected a list of samples or (images, labels)")
        images, labels = data
        labels = [None] * len(images) if labels is None else list(labels)
        if len(labels) != len(images):
            raise ConfigError(f"{what}: {len(images)} images but {len(labels)} label images")
        out = []
        for k, (img, lab) in enumerate(zip(images, labels)):
            img = np.asarray(img)
            out.append(
                Sample(
                    img[None] if img.ndim == 2 else img, None if lab is None else np.asarray(lab), name=f"{what}[{k}]"
                )
            )
        return out
    out = list(data)
    if not all(hasattr(s, "image") and hasattr(s, "labels") for s in out):
        raise ConfigError(f"{what}: expected a list of lociseg.data.Sample or (images, labels)")
    return [copy.copy(s) for s in out]  # training sets points/labels on them; the caller's stay as they are


def estimate_diameter(samples: list, weak: bool) -> float:
    """Median cell diameter over samples: from labels, or (weak) from point spacing."""
    values = []
    for s in samples:
        if weak or s.labels is None:
            if s.points is not None and len(s.points) > 1:
                values.append(point_spacing(np.asarray(s.points)))
        else:
            values.append(diameter_from_labels(s.labels))
    values = [v for v in values if np.isfinite(v)]
    if not values:
        raise ConfigError("cannot estimate the cell diameter (no labels or points): set data.diameter")
    return float(np.median(values))


def prepare(
    samples: list, config: ExperimentConfig, *, weak: bool, diameter: float | None = None
) -> tuple[list[Prepared], float]:
    """Normalise and rescale samples to model scale; returns them and the diameter used."""
    spec = config.model.input
    d = diameter or config.data.diameter or estimate_diameter(samples, weak)
    per_image = not diameter and not config.data.diameter and config.data.diameter_per_image and not weak
    out = []
    for s in samples:
        own = diameter_from_labels(s.labels) if per_image and s.labels is not None else float("nan")
        factor = spec.target_diameter / (own if np.isfinite(own) else d)
        img = normalize_percentile(np.asarray(s.image), spec.normalize_low, spec.normalize_high)
        if img.shape[0] != spec.in_channels:
            raise ConfigError(f"{s.name}: {img.shape[0]} channels, the model takes {spec.in_channels} (data.channels)")
        img = rescale_image(img, factor)
        shape = img.shape[-2:]
        labels = None if s.labels is None else rescale_labels(np.asarray(s.labels), shape).astype(np.int32)
        points = None
        if s.points is not None:
            points = np.asarray(s.points, np.float32).reshape(-1, 2)
            points = (points + 0.5) * np.array(
                [shape[0] / s.image.shape[-2], shape[1] / s.image.shape[-1]], np.float32
            ) - 0.5
        fg = None
        if s.foreground is not None:
            fg = rescale_labels(np.asarray(s.foreground).astype(np.uint8), shape).astype(np.float32)
        # Only the weak loss's territory term reads the cells (a supervised machine run has them as labels).
        cells = None
        if s.cells is not None and weak and config.model.reads_cells:
            cells = rescale_labels(np.asarray(s.cells), shape).astype(np.int32)
        corrected = reviewed = None
        if s.corrected is not None and weak:
            corrected = rescale_labels(np.asarray(s.corrected), shape).astype(np.int32)
            authority = corrected > 0 if s.reviewed is None else np.asarray(s.reviewed)
            reviewed = rescale_labels(authority.astype(np.uint8), shape).astype(np.uint8)
        out.append(Prepared(s.name, img.astype(np.float32), labels, points, fg, factor, cells, corrected, reviewed))
    return out, d


def _rot_points(points: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Points after ``np.rot90(·, k)`` of an array of ``shape``."""
    h, w = shape
    for _ in range(k % 4):
        points = np.stack([w - 1 - points[:, 1], points[:, 0]], axis=1)
        h, w = w, h
    return points


def illumination_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field in [1 - strength, 1]: a random tilt blended with an off-centre vignette.

    Parameters
    ----------
    shape : (int, int)
        Field shape (H, W).
    strength : float
        Darkest point of the field is ``1 - strength`` (0 <= strength < 1).
    rng : numpy.random.Generator
        Source of the tilt direction, the blend and the vignette centre.

    Returns
    -------
    float32 ndarray of ``shape``; its maximum is 1 and its minimum ``1 - strength``.
    """
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    angle, blend = rng.uniform(0, 2 * np.pi), rng.uniform()
    cy, cx = rng.uniform(-0.5, 0.5, size=2)
    f = blend * (np.cos(angle) * xx + np.sin(angle) * yy) - (1 - blend) * ((yy - cy) ** 2 + (xx - cx) ** 2)
    span = f.max() - f.min()
    f = (f - f.min()) / span if span > 0 else np.ones_like(f)
    return (1 - strength * (1 - f)).astype(np.float32)


def quantize(image: np.ndarray, bits: int, full_scale: np.ndarray | float) -> np.ndarray:
    """``image`` rounded to ``2**bits`` levels over ``[0, full_scale]`` (values outside clipped), in the same units."""
    levels = 2**bits - 1
    step = np.asarray(full_scale, np.float64) / levels
    return np.round(np.clip(image / step, 0, levels)) * step


def poisson_gaussian(
    image: np.ndarray, photons: np.ndarray | float, read_noise: np.ndarray | float, rng: np.random.Generator
) -> np.ndarray:
    """Camera noise: Poisson counts at ``photons`` per unit of ``image`` (>= 0) plus Gaussian read noise."""
    photons = np.asarray(photons, np.float64)
    shot = rng.poisson(np.clip(image, 0, None) * photons) / photons
    return shot + rng.normal(0.0, 1.0, size=image.shape) * np.asarray(read_noise, np.float64)


def _draw(p: float, rng: np.random.Generator) -> bool:
    # nothing is drawn for an augmentation that is off, so older configs keep their exact batches
    return p > 0 and bool(rng.random() < p)


def imaging_augment(img: np.ndarray, aug: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Image the crop as another lab might: illumination, dim stain, floor, camera noise, saturation, bits, blank channel.

    ``img`` is a normalised (C, H, W) crop, taken as a linear copy of the
    camera counts. Each step is drawn with its probability in ``aug``; the
    floor and the dimming are undone at the end, as percentile normalisation
    of the perturbed raw image would undo them, and a saturated channel is
    rescaled so its clip level is 1.
    """
    c = img.shape[0]
    x = img.astype(np.float64)
    if _draw(aug.illumination_p, rng):
        x = x * illumination_field(x.shape[-2:], aug.illumination, rng)
    dim = _draw(aug.dim_p, rng)
    offset = _draw(aug.offset_p, rng)
    shot = _draw(aug.shot_noise_p, rng)
    saturate = _draw(aug.saturate_p, rng)
    requantize = _draw(aug.quantize_p, rng)
    if dim or offset or shot or saturate or requantize:
        # counts = gain * (x + base) + floor, with base lifting the darkest pixel to 0
        base = np.maximum(0.0, -x.min(axis=(1, 2), keepdims=True))
        gain = np.exp(rng.uniform(np.log(aug.dim_min), 0.0, size=(c, 1, 1))) if dim else np.ones((c, 1, 1))
        floor = rng.uniform(0.0, aug.offset_max, size=(c, 1, 1)) if offset else np.zeros((c, 1, 1))
        raw = gain * (x + base) + floor
        if shot:
            photons = np.exp(rng.uniform(np.log(aug.photons_min), np.log(10 * aug.photons_min), size=(c, 1, 1)))
            raw = poisson_gaussian(raw, photons, rng.uniform(0.0, aug.read_noise, size=(c, 1, 1)), rng)
        elif dim:  # the camera's read noise stays as the stain dims
            raw = raw + rng.normal(0.0, aug.read_noise, size=raw.shape)
        clip = None
        if saturate:
            # a quantile of the bright pixels (above the mean), so sparse crops keep their cells as bright blobs
            q = rng.uniform(aug.saturate_quantile, 0.99, size=c)
            clip = np.array([np.quantile(raw[k][raw[k] >= raw[k].mean()], q[k]) for k in range(c)]).reshape(c, 1, 1)
            raw = np.minimum(raw, clip)
        if requantize:
            top = raw.max(axis=(1, 2), keepdims=True) * rng.uniform(1.0, 1.5, size=(c, 1, 1))
            raw = quantize(raw, aug.quantize_bits, clip if clip is not None else np.maximum(top, 1e-6))
        x = (raw - floor) / gain - base
        if clip is not None:
            level = (clip - floor) / gain - base  # the saturated level in normalised units
            x = np.where((level > 0) & (level < 1), x / np.where(level > 0, level, 1.0), x)
    if c > 1 and _draw(aug.blank_channel_p, rng):
        k = int(rng.integers(1, c))
        if rng.random() < 0.5:
            x[k] = 0.0  # absent: the channel filled with zeros
        else:  # blank: camera noise alone, stretched to the full range by the normalisation
            x[k] = normalize_percentile(rng.normal(size=(1, *x.shape[-2:])))[0]
    return x.astype(np.float32)


#: Per-pixel maps of a crop, transformed with its image.
_MAPS = ("labels", "foreground", "cells", "corrected", "reviewed")


def sample_crop(
    item: Prepared,
    size: int,
    aug: AugmentConfig,
    rng: np.random.Generator,
    weak: bool,
    centre: np.ndarray | None = None,
) -> dict:
    """One augmented crop (numpy arrays) of ``item``; pixels outside the image are invalid.

    ``centre`` (y, x at model scale) places the crop's centre there (it may
    then reach past the image border); default: a random position.
    """
    _, h, w = item.image.shape
    s = (
        float(np.exp(rng.uniform(np.log(aug.scale_min), np.log(aug.scale_max))))
        if aug.scale_max > aug.scale_min
        else 1.0
    )
    src = max(8, int(round(size / s)))
    if centre is None:
        y0 = int(rng.integers(min(0, h - src), max(0, h - src) + 1))
        x0 = int(rng.integers(min(0, w - src), max(0, w - src) + 1))
    else:  # pixel centre of the crop, (y0 + src / 2 - 0.5), at the point
        y0, x0 = (int(round(float(v) + 0.5 - src / 2)) for v in centre)

    def window(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(a.shape[:-2] + (src, src), fill, dtype=a.dtype)
        box, win = clip_window((y0, x0), (src, src), (h, w))  # the crop always meets the image
        out[(..., *win)] = a[(..., *box)]
        return out

    img = torch.from_numpy(window(item.image, 0.0))[None]
    valid = torch.from_numpy(window(np.ones((h, w), np.float32), 0.0))[None, None]
    img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()
    valid = (F.interpolate(valid, size=(size, size), mode="nearest")[0, 0].numpy() > 0.5).astype(np.float32)
    out: dict = {}
    if item.labels is not None and not weak:
        out["labels"] = rescale_labels(window(item.labels, 0), (size, size)).astype(np.int64)
    if weak:
        out.update(_weak_maps(item, window, (y0, x0), src, size))
    if aug.flips:
        k = int(rng.integers(4))
        flip = bool(rng.integers(2))
        img, valid = _rotate_and_flip(img, valid, out, k, flip, size)
    img = imaging_augment(img, aug, rng)
    img = _intensity_augment(img, aug, rng)
    out["image"] = np.ascontiguousarray(img, dtype=np.float32)
    out["valid"] = np.ascontiguousarray(valid)
    for key in _MAPS:
        if key in out:
            out[key] = np.ascontiguousarray(out[key])
    if "cells" in out:
        out["cells_depth"] = border_depth(out["cells"])
    return out


def _weak_maps(
    item: Prepared, window: Callable[[np.ndarray, float], np.ndarray], corner: tuple[int, int], src: int, size: int
) -> dict:
    """The weak annotations of a crop: points in crop pixels, and the maps ``window`` cuts out, at ``size``."""
    out: dict = {}
    if item.points is not None:
        p = (item.points - np.array(corner, np.float32) + 0.5) * (size / src) - 0.5
        p = p[(p[:, 0] >= 0) & (p[:, 0] <= size - 1) & (p[:, 1] >= 0) & (p[:, 1] <= size - 1)]
        out["points"] = p.astype(np.float32)
    else:
        out["points"] = np.zeros((0, 2), np.float32)
    if item.foreground is not None:
        out["foreground"] = rescale_labels(window(item.foreground, 0.0), (size, size)).astype(np.float32)
    if item.cells is not None:
        out["cells"] = rescale_labels(window(item.cells, 0), (size, size)).astype(np.int64)
    if item.corrected is not None:
        out["corrected"] = rescale_labels(window(item.corrected, 0), (size, size)).astype(np.int64)
        out["reviewed"] = rescale_labels(window(item.reviewed, 0), (size, size)).astype(np.float32)
    return out


def _rotate_and_flip(
    img: np.ndarray, valid: np.ndarray, out: dict, k: int, flip: bool, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a crop by ``k`` quarter turns, then mirror it left-right when ``flip``; ``out``'s maps and points in place."""
    img = np.rot90(img, k, axes=(1, 2))
    valid = np.rot90(valid, k)
    for key in _MAPS:
        if key in out:
            out[key] = np.rot90(out[key], k)
    if "points" in out:
        out["points"] = _rot_points(out["points"], k, (size, size))
    if flip:
        img, valid = img[:, :, ::-1], valid[:, ::-1]
        for key in _MAPS:
            if key in out:
                out[key] = out[key][:, ::-1]
        if "points" in out:
            out["points"] = np.stack([out["points"][:, 0], size - 1 - out["points"][:, 1]], axis=1)
    return img, valid


def _intensity_augment(img: np.ndarray, aug: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gain and gamma, then pixel noise, as configured (draws in that order)."""
    c = img.shape[0]
    if aug.gain > 0:
        img = img * rng.uniform(1 - aug.gain, 1 + aug.gain, size=(c, 1, 1))
    if aug.gamma > 0:
        g = np.exp(rng.normal(0, aug.gamma, size=(c, 1, 1)))
        img = np.sign(img) * np.abs(img) ** g
    if aug.noise > 0:
        img = img + rng.normal(0, aug.noise, size=img.shape)
    return img


def border_depth(labels: np.ndarray) -> np.ndarray:
    """Distance (px, float32) from each pixel to the nearest pixel of another label (0 included).

    The depth of a pixel inside its region of a partition: how far a mask
    reaching that pixel from a neighbouring region has gone past the border.
    """
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    border = find_boundaries(lab, mode="thick")  # pixels with a 4-neighbour of another label
    if not border.any():
        return np.full(lab.shape, float(max(lab.shape)), np.float32)
    return ndi.distance_transform_edt(~border).astype(np.float32)


def point_counts(items: list[Prepared]) -> np.ndarray:
    """Annotated points per item, for ``data.sampler: points`` (every item needs points)."""
    counts = np.array([0 if it.points is None else len(it.points) for it in items], np.int64)
    if counts.sum() == 0:
        raise ConfigError("data.sampler 'points' needs annotated points (a weak mode with annotations)")
    return counts


def pick_point(counts: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """(item, point index) of one point drawn uniformly over all points of all items."""
    j = int(rng.integers(int(counts.sum())))
    idx = int(np.searchsorted(np.cumsum(counts), j, side="right"))
    return idx, j - int(counts[:idx].sum())


def batch_arrays(
    items: list[Prepared], config: ExperimentConfig, step: int, *, weak: bool, shard: tuple[int, int] = (0, 1)
) -> dict:
    """The training batch of ``step`` as CPU tensors (deterministic given the seed).

    A pure function of ``(seed, step)``: worker processes can build the
    batches of later steps ahead of the training loop (:func:`iterate_batches`).
    ``shard = (rank, world)`` builds only samples ``rank, rank + world, ...``
    of the batch (each sample is drawn from its own seed, so the shards of
    all ranks together are the one-process batch).
    """
    size = config.data.crop_size
    if size % 32:
        raise ConfigError(f"data.crop_size must be a multiple of 32, got {size}")
    areas = np.array([it.image.shape[-2] * it.image.shape[-1] for it in items], float)
    by_point = config.data.sampler == "points"
    counts = point_counts(items) if by_point else None
    crops = []
    for b in range(shard[0], config.optim.batch_size, shard[1]):
        rng = np.random.default_rng([config.optim.seed, step, b])
        centre = None
        if counts is not None:
            idx, k = pick_point(counts, rng)
            centre = items[idx].points[k]
        else:
            idx = int(rng.choice(len(items), p=areas / areas.sum()))
        crops.append(sample_crop(items[idx], size, config.data.augment, rng, weak, centre))
    batch: dict = {key: torch.from_numpy(np.stack([c[key] for c in crops])) for key in ("image", "valid")}
    if "labels" in crops[0]:
        batch["labels"] = torch.from_numpy(np.stack([c["labels"] for c in crops]))
    if weak:
        batch["points"] = [torch.from_numpy(c["points"]) for c in crops]
        for key in ("foreground", "cells", "cells_depth"):
            if all(key in c for c in crops):
                batch[key] = torch.from_numpy(np.stack([c[key] for c in crops]))
        if any("corrected" in c for c in crops):  # images without corrections: nothing reviewed
            for key, dtype in (("corrected", np.int64), ("reviewed", np.float32)):
                blank = np.zeros((size, size), dtype)
                batch[key] = torch.from_numpy(np.stack([c.get(key, blank) for c in crops]))
    return batch


def batch_to(batch: dict, device: torch.device) -> dict:
    """A :func:`batch_arrays` batch moved to ``device`` (lists of tensors element-wise)."""
    return {k: [t.to(device) for t in v] if isinstance(v, list) else v.to(device) for k, v in batch.items()}


def make_batch(
    items: list[Prepared],
    config: ExperimentConfig,
    step: int,
    device: torch.device,
    *,
    weak: bool,
    shard: tuple[int, int] = (0, 1),
) -> dict:
    """The training batch of ``step`` on ``device`` (deterministic given the seed; ``shard`` as in :func:`batch_arrays`)."""
    return batch_to(batch_arrays(items, config, step, weak=weak, shard=shard), device)


class StepBatches(torch.utils.data.Dataset):
    """The batches of steps ``start .. end - 1`` as a map-style data set: item ``k`` is step ``start + k``."""

    def __init__(
        self,
        items: list[Prepared],
        config: ExperimentConfig,
        start: int,
        end: int,
        *,
        weak: bool,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.items, self.config, self.start, self.end, self.weak, self.shard = items, config, start, end, weak, shard

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __getitem__(self, k: int) -> dict:
        return batch_arrays(self.items, self.config, self.start + k, weak=self.weak, shard=self.shard)


def iterate_batches(
    items: list[Prepared],
    config: ExperimentConfig,
    start: int,
    end: int,
    device: torch.device,
    *,
    weak: bool,
    workers: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[dict]:
    """The batches of steps ``start .. end - 1`` on ``device``, in order.

    With ``workers > 0`` they are built ahead in that many processes (a GPU
    otherwise waits on the crops and augmentation); the batches are the same
    as :func:`make_batch`'s, since each is a pure function of its step.
    ``shard = (rank, world)``: this rank's part of each batch (distributed training).
    """
    if workers <= 0:
        for step in range(start, end):
            yield make_batch(items, config, step, device, weak=weak, shard=shard)
        return
    loader = torch.utils.data.DataLoader(
        StepBatches(items, config, start, end, weak=weak, shard=shard),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=device.type == "cuda",
    )
    for batch in loader:
        yield batch_to(batch, device)

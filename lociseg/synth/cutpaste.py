"""Cut-and-paste synthetic training images from labelled real ones.

Cells of one type are cut out of real images (all channels, with a small
margin) and pasted, randomly flipped/rotated, onto a cell-free background
synthesised from the same images, until a chosen confluence is reached. Edges
are blended with a feathered alpha. The label image is kept consistent with
the pixels: later pastes occlude earlier ones, each instance keeps only its
largest visible connected piece, and instances whose visible remnant is tiny
are removed *from the image too* (they are not drawn), so every labelled
instance is exactly one pasted cell and no drawn cell is left unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from ..annotate.labels import weak_from_labels
from ..data import Sample
from ..ops.windows import clip_window

__all__ = [
    "CellPatch",
    "extract_cells",
    "synthesize_background",
    "cut_paste_synthesize",
    "iter_cut_paste",
    "extend_dataset",
    "weak_annotations",
]


@dataclass
class CellPatch:
    """One cell cut out of a real image.

    Attributes
    ----------
    image : (C, h, w) float32 ndarray
        Raw intensities of the cell's bounding box plus a margin.
    mask : (h, w) bool ndarray
        The cell's pixels in that box.
    source : int
        Index of the source sample.
    """

    image: np.ndarray
    mask: np.ndarray
    source: int

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _make_sample(**fields: Any) -> Any:
    """A :class:`lociseg.data.Sample` (the data package's record type)."""
    return Sample(**fields)


def extract_cells(
    samples: Iterable[Any],
    *,
    margin: int = 3,
    min_area: int = 16,
    max_size_fraction: float = 0.5,
    include_border: bool = False,
) -> list[CellPatch]:
    """Cut every labelled cell out of the samples.

    Parameters
    ----------
    samples : iterable of Sample
        Objects with ``image`` (C, H, W) and ``labels`` (H, W); samples
        without labels are skipped.
    margin : int, optional
        Pixels kept around each bounding box (the feathered edge blends them).
    min_area : int, optional
        Smaller objects are skipped.
    max_size_fraction : float, optional
        Objects whose box is larger than this fraction of the image side are skipped.
    include_border : bool, optional
        Cells touching the image border are incomplete and skipped unless True.

    Returns
    -------
    list of CellPatch
    """
    cells: list[CellPatch] = []
    for si, sample in enumerate(samples):
        labels = getattr(sample, "labels", None)
        if labels is None:
            continue
        image = np.asarray(sample.image, np.float32)
        if image.ndim == 2:
            image = image[None]
        labels = np.asarray(labels)
        h, w = labels.shape
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            if sl is None:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            if not include_border and (y0 == 0 or x0 == 0 or y1 == h or x1 == w):
                continue
            if (y1 - y0) > max_size_fraction * h or (x1 - x0) > max_size_fraction * w:
                continue
            Y0, Y1 = max(0, y0 - margin), min(h, y1 + margin)
            X0, X1 = max(0, x0 - margin), min(w, x1 + margin)
            mask = labels[Y0:Y1, X0:X1] == lab
            if mask.sum() < min_area:
                continue
            cells.append(CellPatch(image[:, Y0:Y1, X0:X1].copy(), mask, si))
    return cells


def _box_sums(a: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``a`` over every ``size`` x ``size`` window; result[y, x] is the window at top-left (y, x)."""
    c = np.pad(a.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]


def synthesize_background(
    image: np.ndarray,
    labels: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    patch_size: int = 32,
    clearance: int = 3,
) -> np.ndarray:
    """Cell-free background of ``shape`` with the texture of ``image``'s background.

    Square patches free of cells (labels dilated by ``clearance`` px) are
    drawn at random, flipped/rotated and tiled with half overlap under
    sine windows whose squares sum to one, about the background median: this
    keeps both the mean and the noise variance of the real background (a plain
    average would smooth the noise where patches overlap). When no free patch
    exists even at 8 px, the background is a per-pixel resampling of the free
    pixels (or of the darkest 5 % of pixels in a fully confluent image).

    Parameters
    ----------
    image : (C, H, W) ndarray
    labels : (H, W) int ndarray
    shape : (int, int)
        Output (H, W).
    rng : numpy.random.Generator
    patch_size : int, optional
    clearance : int, optional

    Returns
    -------
    (C, H, W) float32 ndarray
    """
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[None]
    fg = np.asarray(labels) > 0
    if clearance > 0 and fg.any():
        fg = ndi.binary_dilation(fg, iterations=clearance)
    free = ~fg
    nc = image.shape[0]
    if not free.any():
        # Fully confluent: the darkest pixels are the best guess of background.
        free = image.sum(0) <= np.percentile(image.sum(0), 5)
    median = np.median(image[:, free], axis=1).astype(np.float32)
    size = min(patch_size, *image.shape[1:])
    while size >= 8:
        ys, xs = np.nonzero(_box_sums(fg, size) == 0)
        if len(ys):
            break
        size //= 2
    else:
        ys = np.zeros(0, int)
    H, W = shape
    if len(ys) == 0:
        vals = image[:, free]
        pick = rng.integers(0, vals.shape[1], size=H * W)
        return vals[:, pick].reshape(nc, H, W).astype(np.float32)

    step = max(1, size // 2)
    t = (np.arange(size) + 0.5) / size
    win1 = np.sin(np.pi * t)  # sin^2 windows at half overlap sum to one
    win = np.outer(win1, win1).astype(np.float32)
    ny = -(-(H + step) // step) + 1
    nx = -(-(W + step) // step) + 1
    acc = np.zeros((nc, (ny + 1) * step, (nx + 1) * step), np.float32)
    wsq = np.zeros(acc.shape[1:], np.float32)
    for gy in range(ny):
        for gx in range(nx):
            k = rng.integers(len(ys))
            p = image[:, ys[k] : ys[k] + size, xs[k] : xs[k] + size] - median[:, None, None]
            p = np.rot90(p, rng.integers(4), axes=(1, 2))
            if rng.random() < 0.5:
                p = p[:, :, ::-1]
            y, x = gy * step, gx * step
            acc[:, y : y + size, x : x + size] += win * p
            wsq[y : y + size, x : x + size] += win**2
    # Start half a window in, where the windows already overlap fully.
    o = step
    out = acc[:, o : o + H, o : o + W] / np.sqrt(np.maximum(wsq[o : o + H, o : o + W], 1e-6))
    return (out + median[:, None, None]).astype(np.float32)


def _feather_alpha(mask: np.ndarray, feather: float) -> np.ndarray:
    """Alpha that is > 0.5 exactly on ``mask`` and ramps linearly over ``feather`` px across its edge."""
    if feather <= 0:
        return mask.astype(np.float32)
    inside = ndi.distance_transform_edt(mask) - 0.5
    outside = ndi.distance_transform_edt(~mask) - 0.5
    signed = np.where(mask, inside, -outside)
    return np.clip(0.5 + signed / (2 * feather), 0.0, 1.0).astype(np.float32)


def weak_annotations(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and foreground of a synthetic label image: :func:`lociseg.annotate.weak_from_labels`."""
    return weak_from_labels(labels)


@dataclass
class _Placement:
    cell: int
    y: int
    x: int
    image: np.ndarray  # (C, h, w) after flips/rotation
    mask: np.ndarray  # (h, w) bool, shrinks as fragments are removed


def _clip(p: _Placement, shape: tuple[int, int]) -> tuple[slice, slice, slice, slice] | None:
    """Image and patch slices of the part of a placement inside the image (None when outside)."""
    clipped = clip_window((p.y, p.x), p.mask.shape, shape)
    return None if clipped is None else (*clipped[0], *clipped[1])


def _paint(placements: list[_Placement], shape: tuple[int, int]) -> np.ndarray:
    """Label image of the placements painted in order (later on top), ids = index + 1."""
    out = np.zeros(shape, np.int32)
    for i, p in enumerate(placements):
        c = _clip(p, shape)
        if c is None:
            continue
        iy, ix, py, px = c
        region = out[iy, ix]
        region[p.mask[py, px]] = i + 1
    return out


def _resolve_occlusion(
    placements: list[_Placement], shape: tuple[int, int], min_area: int, min_visible_fraction: float
) -> tuple[list[_Placement], np.ndarray]:
    """Drop tiny remnants and split-off fragments until every instance is one visible piece."""
    while True:
        labels = _paint(placements, shape)
        keep: list[_Placement] = []
        changed = False
        areas = np.bincount(labels.ravel(), minlength=len(placements) + 1)
        for i, p in enumerate(placements):
            c = _clip(p, shape)
            full = 0 if c is None else int(p.mask[c[2], c[3]].sum())
            if areas[i + 1] < max(min_area, min_visible_fraction * full):
                changed = True  # not drawn at all: nothing orphaned remains in the image
                continue
            iy, ix, py, px = c
            visible = labels[iy, ix] == i + 1
            comp, n = ndi.label(visible)
            if n > 1:
                sizes = np.bincount(comp.ravel())
                sizes[0] = 0
                fragments = visible & (comp != np.argmax(sizes))
                sub = p.mask[py, px]
                sub[fragments] = False  # fragments are not drawn: what lies beneath shows
                changed = True
            keep.append(p)
        placements = keep
        if not changed:
            return placements, labels


def _choose_confluence(
    confluence: float | tuple[float, float] | None, source_fg: float, rng: np.random.Generator
) -> float:
    if confluence is None:
        return float(source_fg)
    if isinstance(confluence, (tuple, list)):
        lo, hi = float(confluence[0]), float(confluence[1])
        return float(rng.uniform(lo, hi))
    return float(confluence)


def cut_paste_synthesize(samples: Sequence[Any], *, n_images: int, **kwargs: Any) -> list[Any]:
    """Synthesise labelled images by pasting real cells onto synthetic background.

    The list form of :func:`iter_cut_paste`; see there for the parameters.
    """
    return list(iter_cut_paste(samples, n_images=n_images, **kwargs))


def iter_cut_paste(
    samples: Sequence[Any],
    *,
    n_images: int,
    confluence: float | tuple[float, float] | None = None,
    rng: np.random.Generator | int | None = None,
    feather: float = 1.0,
    min_area: int = 16,
    min_visible_fraction: float = 0.3,
    margin: int = 3,
    patch_size: int = 32,
    cell_pool: Literal["all", "source"] = "all",
    max_overlap: float = 0.1,
    tries: int = 20,
    max_failures: int = 30,
    max_cells: int = 5000,
    name_prefix: str = "synth",
    cells: list[CellPatch] | None = None,
) -> Iterator[Any]:
    """Yield labelled images made by pasting real cells onto synthetic background.

    Each output image takes the shape, dtype, background texture (and, by
    default, confluence) of a source image, the sources taken in turn in a
    shuffled order; cells are drawn (uniformly, with random rot90/flip)
    from all source images, so the samples should be one cell type (one data
    set). Cells are pasted at uniformly random positions (they may be cut by
    the border) with little overlap (``max_overlap``) until the cell-covered
    fraction of the image reaches the target confluence.

    Parameters
    ----------
    samples : sequence of Sample
        Labelled real images (``image`` (C, H, W), ``labels`` (H, W), ``name``).
    n_images : int
        Number of synthetic images.
    confluence : float or (low, high) or None, optional
        Target fraction of the image covered by cells; a pair draws it
        uniformly per image; None matches the source image's own confluence.
    rng : numpy.random.Generator or int, optional
        Random generator or seed (results are a pure function of it).
    feather : float, optional
        Width (px) of the alpha ramp across each cell edge; 0 pastes hard.
        Alpha is > 0.5 exactly on the cell's labelled pixels.
    min_area : int, optional
        Smaller cells and smaller visible remnants are dropped.
    min_visible_fraction : float, optional
        Occluded cells with less than this fraction visible are dropped (not drawn).
    margin, patch_size : int, optional
        See :func:`extract_cells` and :func:`synthesize_background`.
    cell_pool : {"all", "source"}, optional
        Paste cells from all samples (more variety), or only from the image
        that provides the background and shape (keeps each field's own cell
        size and phenotype; falls back to all when it has no complete cell).
    max_overlap : float, optional
        A paste may cover at most this fraction of its in-image area with
        earlier cells; up to ``tries`` random positions are tried per cell,
        and filling stops after ``max_failures`` cells in a row found no room
        (very high confluence targets may then not be reached: the achieved
        value is in ``meta["confluence"]``). 1.0 allows any overlap.
    tries, max_failures : int, optional
        See ``max_overlap``.
    max_cells : int, optional
        Upper bound on pastes per image.
    name_prefix : str, optional
        Output names are ``f"{name_prefix}_{i:04d}"``.
    cells : list of CellPatch, optional
        Pre-extracted cells (default: :func:`extract_cells` of ``samples``).

    Yields
    ------
    Sample
        With ``image`` (source dtype), ``labels`` (int32, ids 1..N),
        ``points`` (cell centroids) and ``foreground`` (label union), and
        ``meta`` (sources, target and achieved confluence, counts).
    """
    rng = np.random.default_rng(rng)
    samples = list(samples)
    labelled, cells = _labelled_and_cells(samples, cells, margin, min_area)
    options = {
        "confluence": confluence,
        "patch_size": patch_size,
        "cell_pool": cell_pool,
        "feather": feather,
        "min_area": min_area,
        "min_visible_fraction": min_visible_fraction,
        "packing": {"tries": tries, "max_overlap": max_overlap, "max_failures": max_failures, "max_cells": max_cells},
    }
    order: list[int] = []
    for k in range(n_images):
        if not order:
            # every source in turn (shuffled), so the synthetic set keeps the real mix of fields
            order = list(rng.permutation(labelled))
        yield _synth_image(samples, int(order.pop()), cells, rng, name=f"{name_prefix}_{k:04d}", **options)


def _labelled_and_cells(
    samples: list[Any], cells: list[CellPatch] | None, margin: int, min_area: int
) -> tuple[list[int], list[CellPatch]]:
    """Indices of the labelled samples and the cells to paste; refuse samples synthesis cannot use."""
    labelled = [i for i, s in enumerate(samples) if getattr(s, "labels", None) is not None]
    if not labelled:
        raise ValueError("cut-and-paste synthesis needs labelled samples")
    if cells is None:
        cells = extract_cells(samples, margin=margin, min_area=min_area)
    if not cells:
        raise ValueError("no cells could be cut out of the samples (all touch the border or are too small?)")
    n_ch = {np.asarray(samples[i].image).shape[0] if np.asarray(samples[i].image).ndim == 3 else 1 for i in labelled}
    if len(n_ch) != 1:
        raise ValueError(f"samples have different channel counts {sorted(n_ch)}; synthesise one data set at a time")
    return labelled, cells


def _synth_image(
    samples: list[Any],
    si: int,
    cells: list[CellPatch],
    rng: np.random.Generator,
    *,
    name: str,
    confluence: float | tuple[float, float] | None,
    patch_size: int,
    cell_pool: str,
    feather: float,
    min_area: int,
    min_visible_fraction: float,
    packing: dict[str, Any],
) -> Any:
    """One synthetic image on the shape and background of ``samples[si]`` (see :func:`iter_cut_paste`)."""
    src = samples[si]
    src_image = np.asarray(src.image)
    if src_image.ndim == 2:
        src_image = src_image[None]
    src_labels = np.asarray(src.labels)
    shape = src_labels.shape
    target = _choose_confluence(confluence, float((src_labels > 0).mean()), rng)
    target = min(max(target, 0.0), 0.95)
    background = synthesize_background(src_image, src_labels, shape, rng, patch_size=patch_size)
    pool = np.arange(len(cells))
    if cell_pool == "source":
        own = np.nonzero(np.array([c.source for c in cells]) == si)[0]
        pool = own if len(own) else pool
    placements = _pack_cells(cells, pool, shape, target * shape[0] * shape[1], rng, **packing)
    n_pasted = len(placements)
    placements, labels = _resolve_occlusion(placements, shape, min_area, min_visible_fraction)
    image = _cast_like(_compose(background, placements, shape, feather), src_image.dtype)
    labels = labels.astype(np.int32)  # ids are paste order 1..N already (dropped ones re-numbered by _paint)
    points, foreground = weak_annotations(labels)
    meta = {
        "synthetic": True,
        "background_source": getattr(src, "name", str(si)),
        "cell_sources": sorted(
            {getattr(samples[cells[p.cell].source], "name", str(cells[p.cell].source)) for p in placements}
        ),
        "confluence_target": target,
        "confluence": float(foreground.mean()),
        "n_pasted": n_pasted,
        "n_cells": len(placements),
        "channel_names": getattr(src, "meta", {}).get("channel_names")
        if isinstance(getattr(src, "meta", None), dict)
        else None,
    }
    return _make_sample(image=image, labels=labels, points=points, foreground=foreground, name=name, meta=meta)


def _pack_cells(
    cells: list[CellPatch],
    pool: np.ndarray,
    shape: tuple[int, int],
    need: float,
    rng: np.random.Generator,
    *,
    tries: int,
    max_overlap: float,
    max_failures: int,
    max_cells: int,
) -> list[_Placement]:
    """Place cells from ``pool`` at random until they cover ``need`` pixels (see :func:`iter_cut_paste`).

    Real cells touch rather than pile up: a few positions are tried per cell
    and the first that overlaps earlier cells by at most ``max_overlap`` is
    kept (random sequential packing). Coverage is tracked (not summed areas)
    because cells may be cut by the border.
    """
    areas = np.array([c.area for c in cells], np.float64)
    placements: list[_Placement] = []
    covered = np.zeros(shape, bool)
    n_covered = 0
    failures = 0
    queue: list[int] = []
    while n_covered < need and len(placements) < max_cells and failures < max_failures:
        if not queue:
            # Draw a batch worth the missing area and place it largest first: filling
            # gaps one random cell at a time would favour small cells as the image fills.
            m_area = max(1.0, float(areas[pool].mean()))
            batch = rng.choice(pool, size=max(1, int(np.ceil((need - n_covered) / m_area))))
            queue = list(batch[np.argsort(-areas[batch], kind="stable")][::-1])
        ci = int(queue.pop())
        cell = cells[ci]
        rot = int(rng.integers(4))
        img = np.rot90(cell.image, rot, axes=(1, 2))
        msk = np.rot90(cell.mask, rot)
        if rng.random() < 0.5:
            img, msk = img[:, :, ::-1], msk[:, ::-1]
        h, w = msk.shape
        for _ in range(tries):
            y = int(rng.integers(-h // 2, shape[0] - h // 2))
            x = int(rng.integers(-w // 2, shape[1] - w // 2))
            p = _Placement(ci, y, x, img, msk)
            c = _clip(p, shape)
            if c is None:
                continue
            m = p.mask[c[2], c[3]]
            inside = int(m.sum())
            if inside and (covered[c[0], c[1]] & m).sum() <= max_overlap * inside:
                break
        else:
            failures += 1
            continue
        failures = 0
        # copies: masks shrink in place when occluded fragments are removed
        p.image, p.mask = np.array(img, np.float32), np.array(msk, bool)
        placements.append(p)
        region = covered[c[0], c[1]]
        n_covered += int((m & ~region).sum())
        region |= m
    return placements


def _compose(
    background: np.ndarray, placements: list[_Placement], shape: tuple[int, int], feather: float
) -> np.ndarray:
    """The cells alpha-blended over ``background`` (in place), each with its feathered edge."""
    canvas = background
    for p in placements:
        iy, ix, py, px = _clip(p, shape)
        alpha = _feather_alpha(np.pad(p.mask, 2), feather)[2:-2, 2:-2][py, px]
        canvas[:, iy, ix] = alpha * p.image[:, py, px] + (1 - alpha) * canvas[:, iy, ix]
    return canvas


def _cast_like(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip a float image into ``dtype`` (integer dtypes) or cast (floats)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(dtype)
    return image.astype(dtype)


def extend_dataset(
    samples: Sequence[Any],
    factor: float = 5,
    *,
    include_originals: bool = True,
    **kwargs: Any,
) -> list[Any]:
    """Extend a labelled data set with ``factor`` synthetic images per real image.

    ``factor=5`` (the seed study's setting) turns 10 real images into 10 real
    + 50 synthetic ones. Keyword arguments go to :func:`cut_paste_synthesize`.
    """
    samples = list(samples)
    n = int(round(factor * sum(getattr(s, "labels", None) is not None for s in samples)))
    synth = cut_paste_synthesize(samples, n_images=n, **kwargs)
    return (samples + synth) if include_originals else synth

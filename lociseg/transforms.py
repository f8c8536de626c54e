"""Intensity normalisation, rescaling and cell-size estimates shared by training and inference.

Images are normalised per channel by percentiles (:func:`normalize_percentile`,
with :func:`percentile_bounds` measured once for a whole slide).

Models are trained on images rescaled so that cells are about
``target_diameter`` pixels across; predictions are mapped back to the
original pixel grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.spatial import cKDTree

from .errors import InputError
from .structures import Instances


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """Shape (H, W) of an image of ``shape`` rescaled by ``factor`` (at least 1 px)."""
    return max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Rescale a (C, H, W) image by ``factor`` with bilinear interpolation (antialiased when shrinking).

    Returns float32; ``factor == 1`` returns the input as float32 without copying when possible.
    """
    image = np.asarray(image, dtype=np.float32)
    if abs(factor - 1.0) < 1e-6:
        return image
    h, w = scaled_shape(image.shape[-2:], factor)
    t = torch.from_numpy(np.ascontiguousarray(image))[None]
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=factor < 1)
    return out[0].numpy()


def resample_weights(in_size: int, out_size: int, antialias: bool) -> sparse.csr_matrix:
    """(out_size, in_size) sparse matrix of 1-D bilinear resampling weights, as ``F.interpolate`` uses them.

    Pixel centres are aligned (``align_corners=False``) with the scale
    ``in_size / out_size``; with ``antialias`` (shrinking) each output pixel
    averages its input pixels with a triangle filter as wide as the scale.
    """
    scale = in_size / out_size
    i = np.arange(out_size, dtype=np.float64)
    if antialias and scale > 1:
        centre = scale * (i + 0.5)
        lo = np.maximum((centre - scale + 0.5).astype(np.int64), 0)
        hi = np.minimum((centre + scale + 0.5).astype(np.int64), in_size)
        width = int((hi - lo).max())
        j = lo[:, None] + np.arange(width)[None]
        w = np.clip(1 - np.abs((j - centre[:, None] + 0.5) / scale), 0, None) * (j < hi[:, None])
        w /= w.sum(1, keepdims=True)
        rows = np.repeat(np.arange(out_size), width)
        return sparse.csr_matrix((w.ravel(), (rows, np.minimum(j, in_size - 1).ravel())), shape=(out_size, in_size))
    src = np.maximum((i + 0.5) * scale - 0.5, 0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    rows = np.repeat(np.arange(out_size), 2)
    cols = np.stack([np.minimum(i0, in_size - 1), i1], 1).ravel()
    return sparse.csr_matrix((np.stack([1 - frac, frac], 1).ravel(), (rows, cols)), shape=(out_size, in_size))


class RescaledImage:
    """A (C, H, W) image seen rescaled by ``factor``, computed one window at a time.

    ``view[..., y0:y1, x0:x1]`` is the same window of ``rescale_image(image,
    factor)`` (to float rounding: about 1e-6 of the value range) but reads
    and computes only the input pixels under it, so a large image is never
    held at model scale. ``image`` only needs NumPy-style slicing (a lazily
    read array works).
    """

    def __init__(self, image: np.ndarray, factor: float):
        self.image = image
        c, h, w = image.shape
        oh, ow = scaled_shape((h, w), factor)
        self.shape = (c, oh, ow)
        self.dtype = np.dtype(np.float32)
        self._wy = resample_weights(h, oh, factor < 1)
        self._wx = resample_weights(w, ow, factor < 1)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if (
            len(key) != 3
            or key[0] is not Ellipsis
            or not all(isinstance(k, slice) and k.step in (None, 1) for k in key[1:])
        ):
            raise IndexError("RescaledImage takes [..., y0:y1, x0:x1]")
        wy, wx = self._wy[key[1]], self._wx[key[2]]
        # the input rows and columns the window needs
        r0, r1 = int(wy.indices.min()), int(wy.indices.max()) + 1
        c0, c1 = int(wx.indices.min()), int(wx.indices.max()) + 1
        src = np.asarray(self.image[:, r0:r1, c0:c1], np.float32)
        wy = wy[:, r0:r1].toarray().astype(np.float32)
        wx = wx[:, c0:c1].toarray().astype(np.float32).T
        return np.stack([wy @ ch @ wx for ch in src])


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an integer label image to ``shape`` (H, W) by nearest-neighbour sampling."""
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels
    ys = np.minimum(((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.int64), labels.shape[0] - 1)
    xs = np.minimum(((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.int64), labels.shape[1] - 1)
    return labels[ys[:, None], xs[None, :]]


def rescale_instances(instances, from_shape: tuple[int, int], to_shape: tuple[int, int], *, chunk: int = 256):
    """Map instances predicted on an image of ``from_shape`` onto the grid of ``to_shape``.

    Soft masks are resampled bilinearly at the exact position of every target
    pixel (the pixel-centre convention of :func:`rescale_image`), so pasting
    the result on the original grid gives smooth, well-placed outlines
    instead of the blocks of an upsampled label image.

    Parameters
    ----------
    instances : Instances
        Windows in ``from_shape`` pixel coordinates.
    from_shape, to_shape : (H, W)
        Image shape at model scale and the shape to map to.
    chunk : int, optional
        Instances resampled at once (bounds memory).

    Returns
    -------
    Instances
        Locations, windows and origins in ``to_shape`` coordinates; all
        windows share one shape.
    """
    sy = from_shape[0] / to_shape[0]
    sx = from_shape[1] / to_shape[1]
    if abs(sy - 1) < 1e-9 and abs(sx - 1) < 1e-9:
        return instances
    n = len(instances)
    loc = (np.asarray(instances.locations, np.float64) + 0.5) / np.array([sy, sx]) - 0.5
    h, w = instances.masks.shape[1:]
    if n == 0:
        return Instances.empty((max(1, int(np.ceil(h / sy))), max(1, int(np.ceil(w / sx)))))
    o = np.asarray(instances.origins, np.float64)
    # target pixels whose centres map inside a window [o - 0.5, o + h - 0.5)
    oy = np.floor((o[:, 0] + 0.5) / sy - 0.5).astype(np.int64)
    ox = np.floor((o[:, 1] + 0.5) / sx - 0.5).astype(np.int64)
    H, W = int(np.ceil(h / sy)) + 2, int(np.ceil(w / sx)) + 2
    out = np.empty((n, H, W), np.float32)
    ys = np.arange(H, dtype=np.float64)
    xs = np.arange(W, dtype=np.float64)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        # source coordinates (window pixels) of every target pixel, normalised to [-1, 1]
        v = ((oy[a:b, None] + ys[None] + 0.5) * sy - 0.5) - o[a:b, :1]
        u = ((ox[a:b, None] + xs[None] + 0.5) * sx - 0.5) - o[a:b, 1:]
        gy = (2 * v + 1) / h - 1
        gx = (2 * u + 1) / w - 1
        grid = np.stack(np.broadcast_arrays(gx[:, None, :], gy[:, :, None]), -1).astype(np.float32)
        m = torch.from_numpy(np.ascontiguousarray(instances.masks[a:b], np.float32))[:, None]
        out[a:b] = F.grid_sample(m, torch.from_numpy(grid), mode="bilinear", padding_mode="zeros", align_corners=False)[
            :, 0
        ].numpy()
    return Instances(loc.astype(np.float32), instances.scores, out, np.stack([oy, ox], 1))


def diameter_from_labels(labels: np.ndarray) -> float:
    """Median equivalent-circle diameter ``2 sqrt(area / pi)`` of the objects of a label image (NaN if none)."""
    area = np.bincount(np.asarray(labels).ravel().astype(np.int64))[1:]
    area = area[area > 0]
    if area.size == 0:
        return float("nan")
    return float(2 * np.sqrt(np.median(area) / np.pi))


def point_spacing(points, default: float = float("nan")) -> float:
    """Median distance from each point to its nearest neighbour, in pixels.

    A robust scale of the cells: close to the cell diameter where cells
    touch (confluent cultures, tissue); an over-estimate where cells are
    sparse.

    Parameters
    ----------
    points : (N, 2) array or tensor
        Cell locations (y, x).
    default : float, optional
        Returned with fewer than 2 points.
    """
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    loc = np.asarray(points, np.float64).reshape(-1, 2)
    if len(loc) < 2:
        return float(default)
    d, _ = cKDTree(loc).query(loc, k=2)
    return float(np.median(d[:, 1]))


def percentile_bounds(image: np.ndarray, low: float = 1.0, high: float = 99.8, *, rows: int = 1024) -> np.ndarray:
    """The ``low`` and ``high`` percentiles of each channel of a (C, H, W) image, without a float copy of it.

    Integer images are counted into a histogram ``rows`` rows at a time
    (exact, same values as ``np.percentile``'s linear rule); float images
    take ``np.percentile`` one channel at a time. Works on any array that
    slices like NumPy (e.g. a lazily read zarr array).

    Returns
    -------
    bounds : (2, C, 1, 1) float32 ndarray
        ``bounds[0]`` the low, ``bounds[1]`` the high percentiles.

    Raises
    ------
    InputError
        Empty image, or NaN / infinite pixels.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    c, h, w = image.shape
    if c * h * w == 0:
        raise InputError(f"image is empty (shape {tuple(image.shape)})")
    out = np.empty((2, c, 1, 1), np.float32)
    dtype = np.dtype(image.dtype)
    for ch in range(c):
        if dtype.kind in "ui" and dtype.itemsize <= 2:
            base = int(np.iinfo(dtype).min)
            counts = np.zeros(1 << (8 * dtype.itemsize), np.int64)
            for a in range(0, h, rows):
                block = np.asarray(image[ch, a : a + rows]).astype(np.int64).ravel() - base
                counts += np.bincount(block, minlength=len(counts))
            cum = np.cumsum(counts)
            # np.percentile's linear rule: value at virtual index q (n - 1) between its two order statistics
            pos = np.array([low, high]) / 100 * (cum[-1] - 1)
            below = np.floor(pos).astype(np.int64)
            v0 = np.searchsorted(cum, below, side="right") + base
            v1 = np.searchsorted(cum, np.minimum(below + 1, cum[-1] - 1), side="right") + base
            out[:, ch, 0, 0] = v0 + (v1 - v0) * (pos - below)
        else:
            x = np.asarray(image[ch], np.float32)
            if not np.isfinite(x).all():
                raise InputError("image contains NaN or infinite values")
            out[:, ch, 0, 0] = np.percentile(x, [low, high])
    return out


def normalize_percentile(
    image: np.ndarray,
    low: float = 1.0,
    high: float = 99.8,
    *,
    axis: int | tuple[int, ...] = (-2, -1),
    eps: float = 1e-6,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of each channel to 0 and 1.

    Parameters
    ----------
    image : ndarray
        Typically (C, H, W); percentiles are taken over ``axis``.
    low, high : float
        Percentiles (0-100) mapped to 0 and 1; values outside are not clipped.
    axis : int or tuple of int
        Axes the percentiles are computed over (default: the two spatial axes,
        so each channel is scaled on its own).
    eps : float
        Smallest range; a constant channel maps to zeros instead of NaN.
    bounds : (2, ...) ndarray, optional
        Percentiles already measured (e.g. :func:`percentile_bounds` of the
        whole image, to normalise one tile of it the same way); ``low``,
        ``high`` and ``axis`` are then unused.

    Returns
    -------
    out : float32 ndarray of the same shape.

    Raises
    ------
    InputError
        The image contains NaN or infinite values, or is empty.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    x = np.asarray(image)
    if x.size == 0:
        raise InputError(f"image is empty (shape {x.shape})")
    out = x.astype(np.float32)  # the one copy; the rest is done in place (a slide's temporaries are slide-sized)
    if x.dtype.kind not in "biu" and not np.isfinite(out).all():  # integers are always finite
        raise InputError("image contains NaN or infinite values")
    if bounds is None:
        lo, hi = np.percentile(out, [low, high], axis=axis, keepdims=True).astype(np.float32)
    else:
        lo, hi = np.asarray(bounds, np.float32)
    scale = np.maximum(hi - lo, np.float32(eps))
    if np.broadcast_shapes(out.shape, lo.shape) != out.shape:  # e.g. an (H, W) image with (C, 1, 1) bounds
        return (out - lo) / scale  # float32 throughout
    out -= lo
    out /= scale
    return out

"""Instances from a 3-class (background / interior / boundary) probability map: U-Net output decoding.

Used by the U-Net baseline: the interior class separates touching cells,
so its connected components are the seeds; each seed is grown back over the
predicted cell area (interior + boundary) with a watershed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ..structures import Instances


def three_class_to_labels(
    probs: np.ndarray,
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_seed_size: int = 4,
    min_size: int = 16,
) -> np.ndarray:
    """Turn a 3-class probability map into an instance label image.

    1. Seeds: 4-connected components of ``probs[1] > interior_threshold``
       with at least ``min_seed_size`` pixels.
    2. Cell area: pixels with ``probs[1] + probs[2] > foreground_threshold``
       (or inside a seed).
    3. Watershed of ``-probs[1]`` (flooding from the most certain interior
       outwards) from the seeds, restricted to the cell area, so boundary
       pixels go to the seed they are closest to in probability.
    4. Objects under ``min_size`` pixels are removed; ids are 1..N.

    Parameters
    ----------
    probs : (3, H, W) float ndarray
        Class probabilities (background, interior, boundary), e.g. a softmax.
    interior_threshold, foreground_threshold : float, optional
    min_seed_size, min_size : int, optional
        In pixels.

    Returns
    -------
    (H, W) int32 ndarray
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] != 3:
        raise ValueError(f"probs must have shape (3, H, W), got {probs.shape}")
    interior = probs[1]
    seeds_mask = interior > interior_threshold
    seeds, n = ndi.label(seeds_mask)
    if n == 0:
        return np.zeros(interior.shape, np.int32)
    sizes = np.bincount(seeds.ravel(), minlength=n + 1)
    small = sizes < min_seed_size
    small[0] = False
    if small.any():
        seeds[small[seeds]] = 0
    area = ((probs[1] + probs[2]) > foreground_threshold) | (seeds > 0)
    grown = watershed(-interior, markers=seeds, mask=area)
    return _drop_small_and_relabel(grown, min_size)


def _drop_small_and_relabel(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects smaller than ``min_size`` and renumber the rest 1..N."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(len(sizes), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def labels_to_instances(labels: np.ndarray, score_map: np.ndarray | None = None) -> Instances:
    """Convert a label image to :class:`Instances` (one binary window per object).

    All windows share one shape (the contract of :class:`Instances`): the
    largest object bounding box, each window centred on its object's box, so
    pasting the windows back with threshold 0.5 reproduces ``labels``.

    Parameters
    ----------
    labels : (H, W) int ndarray
        Instance ids 1..N (gaps allowed), 0 = background.
    score_map : (H, W) float ndarray, optional
        Per-pixel confidence; the score of an object is its mean over the
        object (e.g. the interior probability). Defaults to 1.

    Returns
    -------
    Instances
        Locations are object centroids (y, x).
    """
    labels = np.asarray(labels)
    slices = ndi.find_objects(labels)
    ids = [i + 1 for i, s in enumerate(slices) if s is not None]
    if not ids:
        return Instances.empty()
    boxes = np.array(
        [[slices[i - 1][0].start, slices[i - 1][0].stop, slices[i - 1][1].start, slices[i - 1][1].stop] for i in ids]
    )
    h = int((boxes[:, 1] - boxes[:, 0]).max())
    w = int((boxes[:, 3] - boxes[:, 2]).max())
    index = np.asarray(ids)
    centroids = np.asarray(ndi.center_of_mass(np.ones_like(labels, np.float32), labels, index), np.float32).reshape(
        -1, 2
    )
    if score_map is None:
        scores = np.ones(len(ids), np.float32)
    else:
        scores = np.asarray(ndi.mean(np.asarray(score_map, np.float32), labels, index), np.float32)
    masks = np.zeros((len(ids), h, w), np.float32)
    origins = np.zeros((len(ids), 2), np.int64)
    for k, (lab, (y0, y1, x0, x1)) in enumerate(zip(ids, boxes)):
        oy = y0 - (h - (y1 - y0)) // 2
        ox = x0 - (w - (x1 - x0)) // 2
        origins[k] = oy, ox
        sub = labels[y0:y1, x0:x1] == lab
        masks[k, y0 - oy : y1 - oy, x0 - ox : x1 - ox] = sub
    return Instances(centroids, np.clip(scores, 0.0, 1.0), masks, origins)


def three_class_to_instances(probs: np.ndarray, **kwargs) -> Instances:
    """:func:`three_class_to_labels` followed by :func:`labels_to_instances`.

    The score of each instance is its mean interior probability.
    """
    labels = three_class_to_labels(probs, **kwargs)
    return labels_to_instances(labels, np.asarray(probs)[1])

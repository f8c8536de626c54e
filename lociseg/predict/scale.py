"""Rescaling between image scale and model scale.

Models are trained on images rescaled so that cells are about
``target_diameter`` pixels across; predictions are mapped back to the
original pixel grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an integer label image to ``shape`` (H, W) by nearest-neighbour sampling."""
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels
    ys = np.minimum(((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.int64), labels.shape[0] - 1)
    xs = np.minimum(((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.int64), labels.shape[1] - 1)
    return labels[ys[:, None], xs[None, :]]

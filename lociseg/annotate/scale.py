"""The nucleus scale of an image, measured from its nuclear stain alone.

Annotation settings (point-detection sigmas, smoothing, growth distances)
are tuned at one reference scale; a lab's images come at any magnification.
The scale is read off the nuclear channel before anything else: the
equivalent-circle diameter of well-separated nuclei.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops_table

from ..transforms import normalize_percentile

__all__ = ["nucleus_diameter", "mask_diameter", "REF_NUCLEUS_DIAMETER"]

#: :func:`nucleus_diameter` on the BBBC018 DNA channel (median over the 27
#: train fields), the scale at which the annotation defaults apply together
#: with :data:`~lociseg.annotate.points.REF_DIAMETER` (23 px cells).
REF_NUCLEUS_DIAMETER = 10.8


def nucleus_diameter(
    nucleus_image: np.ndarray,
    *,
    min_area: int = 12,
    min_solidity: float = 0.9,
    min_count: int = 5,
) -> tuple[float, int]:
    """Median equivalent-circle diameter of the single, convex nuclei of a fluorescence image.

    The percentile-normalised nuclear stain, smoothed (sigma 1 px), is cut at
    its Otsu threshold; connected pieces of at least ``min_area`` px whose
    solidity (area / convex-hull area) is at least ``min_solidity`` are taken
    as single nuclei (clumps of touching nuclei are concave and left out),
    and the median of ``2 sqrt(area / pi)`` over them is returned. When fewer
    than ``min_count`` pieces are convex enough, all pieces above ``min_area``
    count. Bright nuclei on a dark background only (fluorescence, not
    brightfield or H&E).

    Parameters
    ----------
    nucleus_image : (H, W) array
        Nuclear stain, any dtype.
    min_area : int
        Smaller pieces are noise.
    min_solidity : float
        Convexity a piece needs to count as one nucleus.
    min_count : int
        Convex pieces needed before the concave ones are ignored.

    Returns
    -------
    diameter : float
        Pixels; NaN when the image holds no piece above ``min_area``.
    count : int
        How many pieces the median was taken over (a confidence: a handful
        means an unreliable scale).
    """
    img = np.asarray(nucleus_image)
    if img.ndim != 2:
        raise ValueError(f"nucleus_image must be 2-D, got shape {img.shape}")
    smooth = ndi.gaussian_filter(normalize_percentile(img.astype(np.float32)), 1.0)
    if not np.isfinite(smooth).all() or smooth.max() <= smooth.min():
        return float("nan"), 0
    return mask_diameter(
        smooth > threshold_otsu(smooth), min_area=min_area, min_solidity=min_solidity, min_count=min_count
    )


def mask_diameter(
    mask: np.ndarray, *, min_area: int = 12, min_solidity: float = 0.9, min_count: int = 5
) -> tuple[float, int]:
    """Median equivalent-circle diameter of the single, convex pieces of a binary mask.

    The measuring step of :func:`nucleus_diameter` (same parameters and
    returns) for a foreground found another way.
    """
    props = regionprops_table(label(np.asarray(mask) > 0), properties=("area", "solidity"))
    area, solidity = props["area"], props["solidity"]
    keep = (area >= min_area) & (solidity >= min_solidity)
    if keep.sum() < min_count:
        keep = area >= min_area
    if not keep.any():
        return float("nan"), 0
    return float(2 * np.sqrt(np.median(area[keep]) / np.pi)), int(keep.sum())

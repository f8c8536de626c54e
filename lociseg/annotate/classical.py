"""A classical, training-free segmentation in the CellProfiler style: the baseline every model must clear.

Three pipelines, each with fixed rules that read their scales off the image
itself (nothing is set per data set):

- :func:`classical_nuclei`: Otsu threshold of the smoothed nuclear stain, holes
  filled, touching nuclei split by a watershed of the distance transform from
  its h-maxima (CellProfiler IdentifyPrimaryObjects, "Otsu" + "Shape" declumping);
- :func:`classical_cells`: those nuclei grown into cells over a foreground from
  an Otsu threshold (in log units) of the cytoplasm stain, by a watershed of
  distance plus stain gradient (IdentifySecondaryObjects, "Propagation" style,
  the step :func:`~lociseg.annotate.grow_cells` of the machine annotation);
- :func:`classical_phase_cells`: label-free images with no nucleus (phase
  contrast): the local standard deviation (texture) of the image as the
  foreground signal, then the same distance-transform split as the nuclei.

>>> nuclei, d = classical_nuclei(dna)                      # doctest: +SKIP
>>> cells = classical_cells(dna, actin)                    # doctest: +SKIP
>>> cells = classical_phase_cells(phase)                   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from ..io import normalize_percentile
from .cells import grow_cells
from .foreground import foreground_level, smoothed_stain
from .points import REF_DIAMETER
from .scale import REF_NUCLEUS_DIAMETER, mask_diameter

__all__ = ["classical_nuclei", "classical_cells", "classical_phase_cells", "split_touching", "texture"]

#: Smoothing before the threshold: sigma = max(1 px, diameter * this).
SMOOTHING = 1 / 20
#: A distance-transform maximum seeds its own object when its dynamic (the
#: drop to the neck joining it to a higher one) is at least this fraction of
#: the object diameter: two discs of radius r split while their neck is
#: narrower than 1.8 r wide.
H_FRACTION = 0.1
#: Objects smaller than this fraction of the typical object's area are dropped.
MIN_AREA_FRACTION = 0.1
#: Gaussian sigma (px) of the local standard deviation that turns a label-free
#: (phase contrast) image into a foreground signal.
TEXTURE_SIGMA = 8.0


def _normalized(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    return normalize_percentile(img.astype(np.float32))


def texture(image: np.ndarray, sigma: float = TEXTURE_SIGMA) -> np.ndarray:
    """Local standard deviation of the percentile-normalised image in a Gaussian window."""
    img = _normalized(image)
    mean = ndi.gaussian_filter(img, sigma)
    return np.sqrt(np.clip(ndi.gaussian_filter(img * img, sigma) - mean * mean, 0, None))


def split_touching(mask: np.ndarray, diameter: float) -> np.ndarray:
    """Split a binary mask into objects by a watershed of its distance transform.

    Seeds are the h-maxima of the Euclidean distance transform with
    ``h = max(1, H_FRACTION * diameter)``; a connected piece with no seed
    (too thin to have one) stays one object. Objects smaller than
    ``MIN_AREA_FRACTION`` of a disc of ``diameter`` are dropped.

    Parameters
    ----------
    mask : (H, W) bool array
    diameter : float
        Typical object diameter (px).

    Returns
    -------
    (H, W) int32 label image, ids 1..N.
    """
    fg = np.asarray(mask) > 0
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    dist = ndi.distance_transform_edt(fg)
    markers, n = ndi.label(h_maxima(dist, max(1.0, H_FRACTION * float(diameter))))
    labels = watershed(-dist, markers, mask=fg)
    rest, m = ndi.label(fg & (labels == 0))
    labels[rest > 0] = rest[rest > 0] + n
    min_area = MIN_AREA_FRACTION * np.pi / 4 * float(diameter) ** 2
    small = np.bincount(labels.ravel()) < min_area
    small[0] = True
    labels[small[labels]] = 0
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids, inverse = np.unique(labels, return_inverse=True)
    out = inverse.reshape(labels.shape).astype(np.int32)
    return out if ids[0] == 0 else out + 1


def _threshold_and_split(signal: np.ndarray, mask_of) -> tuple[np.ndarray, float]:
    """Measure the object size on a first mask, smooth at that size, threshold again and split."""
    d, _ = mask_diameter(mask_of(ndi.gaussian_filter(signal, 1.0)))
    if not np.isfinite(d):
        return np.zeros(signal.shape, np.int32), float("nan")
    smooth = ndi.gaussian_filter(signal, max(1.0, SMOOTHING * d))
    fg = ndi.binary_fill_holes(mask_of(smooth))
    return split_touching(fg, d), d


def _otsu_mask(img: np.ndarray) -> np.ndarray:
    return img > threshold_otsu(img) if np.ptp(img) > 0 else np.zeros(img.shape, bool)


def _log_otsu_mask(img: np.ndarray) -> np.ndarray:
    return img > foreground_level(img, smoothing=0, normalize=False)


def _li_mask(img: np.ndarray) -> np.ndarray:
    return img > threshold_li(img) if np.ptp(img) > 0 else np.zeros(img.shape, bool)


#: Global threshold rules on the normalised stain: Otsu, Otsu of the log
#: intensity (CellProfiler's "log transform" option), minimum cross-entropy (Li).
THRESHOLD_RULES = {"otsu": _otsu_mask, "log-otsu": _log_otsu_mask, "li": _li_mask}
#: Rule for the cell channel of :func:`classical_cells` (a stain or the texture
#: of phase contrast; dim spread cytoplasm needs log units) and for the
#: texture of a phase-contrast image alone in :func:`classical_phase_cells`
#: (linear: with no nuclei to anchor the cells, the log rule takes in the
#: debris texture of the background; chosen on the Usiigaci train fields).
CYTO_THRESHOLD = "log-otsu"
PHASE_THRESHOLD = "otsu"


def classical_nuclei(
    nucleus: np.ndarray, *, invert: bool | None = None, threshold: str = "otsu"
) -> tuple[np.ndarray, float]:
    """Nuclei from a nuclear stain: Otsu threshold, then a distance-transform watershed.

    The percentile-normalised stain is smoothed (sigma 1 px), thresholded at
    Otsu's level, and the typical diameter ``d`` is the median
    equivalent-circle diameter of its convex pieces
    (:func:`~lociseg.annotate.scale.mask_diameter`). The stain is then
    smoothed at ``max(1, d / 20)`` px, thresholded at its own Otsu level,
    holes are filled and touching nuclei split (:func:`split_touching`).

    Parameters
    ----------
    nucleus : (H, W) array
        Nuclear stain, any dtype.
    invert : bool, optional
        Dark nuclei on a bright background (brightfield, H&E). None: invert
        when more than half of the image lies above Otsu's level, since
        nuclei are the minority class.

    Returns
    -------
    labels : (H, W) int32
    diameter : float
        The measured typical diameter (px); NaN when nothing was found.
    """
    img = _normalized(nucleus)
    if invert is None:
        invert = bool(_otsu_mask(ndi.gaussian_filter(img, 1.0)).mean() > 0.5)
    if invert:
        img = 1.0 - img
    if threshold not in THRESHOLD_RULES:
        raise ValueError(f"threshold must be one of {sorted(THRESHOLD_RULES)}, got {threshold!r}")
    return _threshold_and_split(img, THRESHOLD_RULES[threshold])


def classical_cells(
    nucleus: np.ndarray, cytoplasm: np.ndarray, *, phase: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Cells from a nuclear and a cytoplasm stain: nuclei grown over a thresholded cytoplasm.

    Nuclei come from :func:`classical_nuclei`. The cytoplasm stain
    (with ``phase``: its :func:`texture`, for label-free channels) is
    smoothed at ``max(1, d / 20)`` px of the nucleus diameter ``d`` and
    thresholded at Otsu's level of its log intensity
    (:func:`~lociseg.annotate.foreground_level`; in log units dim cytoplasm
    separates from the background where a linear Otsu cuts at bright cores);
    the foreground keeps the nuclei and has its holes filled. The nuclei are
    grown over it by :func:`~lociseg.annotate.grow_cells` (distance plus
    stain-gradient watershed) at the cell scale the nuclei imply
    (:func:`~lociseg.annotate.estimate_cell_scale`'s rule); foreground
    pieces without a nucleus are dropped.

    Returns
    -------
    cells, nuclei : (H, W) int32
        Cell ``k`` grows from nucleus ``k``.
    """
    nuclei, d = classical_nuclei(nucleus)
    if not nuclei.any():
        return nuclei, nuclei
    signal = texture(cytoplasm) if phase else _normalized(cytoplasm)
    smooth = smoothed_stain(signal, max(1.0, SMOOTHING * d), normalize=True)
    fg = THRESHOLD_RULES[CYTO_THRESHOLD](smooth) | (nuclei > 0)
    fg = ndi.binary_fill_holes(fg)
    cell_diameter = REF_DIAMETER * d / REF_NUCLEUS_DIAMETER
    cells = grow_cells(fg, nuclei, signal, diameter=cell_diameter, erode=0)
    return cells, nuclei


def classical_phase_cells(image: np.ndarray) -> np.ndarray:
    """Cells from a label-free (phase contrast) image with no nucleus: texture foreground, distance split.

    The local standard deviation (:func:`texture`, sigma ``TEXTURE_SIGMA``)
    is high on cells (edges, halos, organelles) and low on the flat
    background. It is thresholded at Otsu's level of its log, holes are
    filled, the typical diameter measured on the pieces and touching cells
    split as nuclei are (:func:`split_touching`).

    Returns
    -------
    (H, W) int32 label image.
    """
    signal = normalize_percentile(texture(image))
    return _threshold_and_split(signal, THRESHOLD_RULES[PHASE_THRESHOLD])[0]

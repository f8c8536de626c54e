"""Machine-made cells: the foreground split among the points along nuclei and cytoplasm edges."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..transforms import normalize_percentile
from .points import REF_DIAMETER

__all__ = ["propagate_cells", "grow_cells"]


def _seed_image(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Label ``k + 1`` at ``points[k]`` (rounded, clipped into the image), grown to 3x3."""
    seeds = np.zeros(shape, np.int32)
    if len(points):
        iy = np.clip(np.round(points[:, 0]).astype(int), 0, shape[0] - 1)
        ix = np.clip(np.round(points[:, 1]).astype(int), 0, shape[1] - 1)
        seeds[iy, ix] = np.arange(1, len(points) + 1)
    return ndi.grey_dilation(seeds, size=(3, 3))


def propagate_cells(
    foreground: np.ndarray,
    points: np.ndarray,
    nucleus: np.ndarray,
    cytoplasm: np.ndarray,
    *,
    diameter: float | None = None,
    edge_weight: float = 4.0,
    smoothing: float = 0.5,
    erode: int = 1,
) -> np.ndarray:
    """Split a foreground among points into cells, with no training.

    Two seeded watersheds (:func:`skimage.segmentation.watershed`):

    1. *nuclei*: from each point (a 3x3 seed) over the inverted, smoothed
       nuclear stain, within the pixels brighter than its Otsu threshold,
       so that each point gets the shape of its nucleus;
    2. *cells*: from the nuclei over the elevation
       ``d(x) + edge_weight * |grad C(x)| / mean_fg |grad C|`` within the
       foreground, where ``d`` is the distance (px at the reference scale) to
       the nearest nucleus and ``|grad C|`` the Sobel magnitude of the
       smoothed cytoplasm stain. The distance alone gives the Voronoi
       partition of the nuclei *shapes*, better than that of their centres
       (:func:`~lociseg.annotate.partition_foreground`); the edge term moves
       borders onto the cytoplasm edges between touching cells.

    The foreground is eroded by ``erode`` px first (graph-cut foregrounds
    lie about a pixel outside the cells). Defaults were chosen on the
    BBBC018 *train* split (the sweep and its scores: BENCHMARKS.md,
    "Machine annotations on BBBC018").

    Parameters
    ----------
    foreground : (H, W) bool array
        Cell (foreground) mask, e.g. the chosen graph cut.
    points : (N, 2) array (y, x)
        One point per nucleus.
    nucleus, cytoplasm : (H, W) arrays
        Nuclear and cytoplasm stains (any dtype; percentile-normalised here).
    diameter : float, optional
        Typical cell diameter (px); distances and smoothing scale with
        ``diameter / REF_DIAMETER``. None: the reference scale.
    edge_weight : float
        Weight of the cytoplasm edge against distance (0: nucleus-shape Voronoi).
    smoothing : float
        Gaussian sigma (px, reference scale) of both stains.
    erode : int
        Erosion of the foreground (px).

    Returns
    -------
    (H, W) int32 label image: label ``k + 1`` is the cell of ``points[k]``
    (missing where two points share a pixel); 0 is background.
    """
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    fg = np.asarray(foreground) > 0
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    nuc_img, cyto_img = np.asarray(nucleus), np.asarray(cytoplasm)
    if nuc_img.shape != fg.shape or cyto_img.shape != fg.shape:
        raise ValueError(
            f"foreground {fg.shape}, nucleus {nuc_img.shape} and cytoplasm {cyto_img.shape} must have one shape"
        )
    if len(pts) == 0:
        return np.zeros(fg.shape, np.int32)
    k = 1.0 if diameter is None else float(diameter) / REF_DIAMETER
    dna = ndi.gaussian_filter(normalize_percentile(nuc_img.astype(np.float32)), smoothing * k)
    seeds = _seed_image(pts, fg.shape)
    bright = dna > threshold_otsu(dna) if np.ptp(dna) > 0 else np.zeros(fg.shape, bool)
    nuclei = watershed(-dna, seeds, mask=bright | (seeds > 0))
    return grow_cells(
        fg, nuclei, cyto_img, diameter=diameter, edge_weight=edge_weight, smoothing=smoothing, erode=erode
    )


def grow_cells(
    foreground: np.ndarray,
    nuclei: np.ndarray,
    cytoplasm: np.ndarray,
    *,
    diameter: float | None = None,
    edge_weight: float = 4.0,
    smoothing: float = 0.5,
    erode: int = 1,
) -> np.ndarray:
    """Grow nucleus labels into cells over the foreground (step 2 of :func:`propagate_cells`).

    A watershed from the nuclei over ``d(x) + edge_weight * |grad C(x)| /
    mean_fg |grad C|`` within the (eroded) foreground, as in
    :func:`propagate_cells`; the nuclei themselves always stay in their cell.

    Parameters
    ----------
    foreground : (H, W) bool array
    nuclei : (H, W) int array
        Nucleus instance labels (the seeds); label ids are kept.
    cytoplasm : (H, W) array
        Cytoplasm stain (any dtype; percentile-normalised here).
    diameter, edge_weight, smoothing, erode
        As in :func:`propagate_cells`.

    Returns
    -------
    (H, W) int32 label image with the ids of ``nuclei``.
    """
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    fg = np.asarray(foreground) > 0
    nuclei = np.asarray(nuclei)
    cyto_img = np.asarray(cytoplasm)
    if nuclei.shape != fg.shape or cyto_img.shape != fg.shape:
        raise ValueError(
            f"foreground {fg.shape}, nuclei {nuclei.shape} and cytoplasm {cyto_img.shape} must have one shape"
        )
    if not nuclei.any():
        return np.zeros(fg.shape, np.int32)
    k = 1.0 if diameter is None else float(diameter) / REF_DIAMETER
    dist = ndi.distance_transform_edt(nuclei == 0) / k
    edges = sobel(ndi.gaussian_filter(normalize_percentile(cyto_img.astype(np.float32)), smoothing * k))
    scale = float(edges[fg].mean()) if fg.any() else 0.0
    elevation = dist + (edge_weight * edges / scale if scale > 0 else 0.0)
    area = ndi.binary_erosion(fg, iterations=erode) if erode > 0 else fg
    return watershed(elevation, nuclei, mask=area | (nuclei > 0)).astype(np.int32)

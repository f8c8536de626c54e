"""Foreground (cell body) candidates from the cytoplasm stain by graph cut, and picking one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from ..transforms import normalize_percentile, point_spacing

__all__ = ["foreground_candidates", "choose_foreground", "foreground_level", "smoothed_stain", "THRESHOLDS", "RULES"]

#: Ways to pick a candidate: ``"level"`` (the threshold nearest the image's own
#: foreground level, :func:`foreground_level`) or ``"points"`` (the older rule
#: scoring agreement with the points, tuned on BBBC018).
RULES = ("level", "points")

#: Preset thresholds on the smoothed, percentile-normalised (1 -> 0, 99.8 -> 1)
#: cytoplasm intensity, from generous to tight.
THRESHOLDS = (0.05, 0.07, 0.09, 0.12, 0.16)


def smoothed_stain(cyto_image: np.ndarray, smoothing: float = 0.75, *, normalize: bool = True) -> np.ndarray:
    """The cytoplasm stain as the candidates and the level see it: percentile-normalised, then smoothed.

    Float32. Compute it once and pass it with ``smoothing=0, normalize=False``
    to :func:`foreground_candidates` and :func:`foreground_level`.
    """
    img = np.asarray(cyto_image).astype(np.float32)
    img = normalize_percentile(img) if normalize else img
    return ndi.gaussian_filter(img, smoothing) if smoothing > 0 else img


def _graph_cut(smooth: np.ndarray, threshold: float, pairwise_weight: float) -> np.ndarray:
    import maxflow

    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes(smooth.shape)
    if pairwise_weight > 0:
        gy, gx = np.gradient(smooth)
        g2 = gy * gy + gx * gx
        beta = 1.0 / (2.0 * g2.mean() + 1e-12)
        # Contrast-sensitive Potts: cutting between neighbours is cheap across strong edges.
        g.add_grid_edges(ids, weights=pairwise_weight * np.exp(-beta * g2), symmetric=True)
    # Unary: the signed distance to the threshold in units of the threshold, so
    # all five candidates weigh data against smoothness alike.
    d = (smooth - threshold) / threshold
    g.add_grid_tedges(ids, np.clip(d, 0, None), np.clip(-d, 0, None))
    g.maxflow()
    return ~g.get_grid_segments(ids)


def foreground_candidates(
    cyto_image: np.ndarray,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    smoothing: float = 0.75,
    pairwise_weight: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """Foreground candidates by graph cut at a series of intensity thresholds.

    For each threshold ``t`` a binary labelling minimises
    ``sum_x D_t(x) + w * sum_{x~x'} exp(-beta |grad I|^2) [f(x) != f(x')]``
    (4-neighbours) with PyMaxflow, where ``I`` is the Gaussian-smoothed,
    percentile-normalised cytoplasm image, the unary cost of background is
    ``max(0, (I - t) / t)`` and of foreground ``max(0, (t - I) / t)``, and
    ``beta = 1 / (2 mean |grad I|^2)``. The Potts term removes speckle and
    lets the border follow image edges.

    Parameters
    ----------
    cyto_image : (H, W) array
        Cytoplasm / cell-body stain (actin, CellMask, ...).
    thresholds : sequence of float
        Thresholds on the normalised intensity (default :data:`THRESHOLDS`).
    smoothing : float
        Gaussian sigma (px) before the cut.
    pairwise_weight : float
        ``w``; 0 gives plain thresholding.
    normalize : bool
        Percentile-normalise first.

    Returns
    -------
    (K, H, W) bool ndarray
        One candidate per threshold, in the given order.
    """
    img = np.asarray(cyto_image)
    if img.ndim != 2:
        raise ValueError(f"cyto_image must be 2-D, got shape {img.shape}")
    if any(t <= 0 for t in thresholds):
        raise ValueError("thresholds must be positive")
    smooth = smoothed_stain(img, smoothing, normalize=normalize)
    return np.stack([_graph_cut(smooth, float(t), pairwise_weight) for t in thresholds])


def foreground_level(cyto_image: np.ndarray, *, smoothing: float = 0.75, normalize: bool = True) -> float:
    """The cytoplasm stain's own foreground level: Otsu's threshold of the log intensity.

    On the smoothed, percentile-normalised stain (as :func:`foreground_candidates`
    sees it), clipped below at 1e-3. In log units the dim cytoplasm and thin
    processes of large flat cells separate from the camera background, where
    Otsu on the linear intensity cuts at the bright cell cores.

    Returns
    -------
    float
        A threshold on the normalised intensity.
    """
    smooth = smoothed_stain(cyto_image, smoothing, normalize=normalize)
    logs = np.log(np.clip(smooth, 1e-3, None))
    if logs.max() <= logs.min():
        return float(THRESHOLDS[len(THRESHOLDS) // 2])
    return float(np.exp(threshold_otsu(logs)))


def choose_foreground(
    candidates: np.ndarray,
    points: np.ndarray,
    *,
    far_distance: float | None = None,
    min_inside: float = 0.9,
    thresholds: Sequence[float] | None = None,
    level: float | None = None,
) -> tuple[int, np.ndarray]:
    """Pick the candidate that agrees best with the detected points.

    Criterion, for each candidate ``F``::

        score = inside - far - orphan

    * ``inside``: fraction of points lying in ``F`` (cells must be foreground);
    * ``far``: fraction of ``F`` farther than ``far_distance`` from every point
      (default 0.5 x the point spacing -- the median nearest-neighbour
      distance --, about a cell radius: background leaking in between cells;
      0.5 was the best of 0.5/0.75/1/1.5 on the BBBC018 train split);
    * ``orphan``: fraction of ``F`` in connected components holding no point
      (debris, out-of-focus blobs).

    Candidates with ``inside < min_inside`` are only chosen when none reaches
    it. Ties go to the earlier (more generous) candidate.

    With ``level`` (:func:`foreground_level`) and the candidates'
    ``thresholds``, the candidate whose threshold is nearest ``level`` (in
    log units) is chosen instead, among those reaching ``min_inside``; the
    scores are still computed, for the report and the contact sheet.

    Parameters
    ----------
    candidates : (K, H, W) bool array
    points : (N, 2) array of (y, x)

    Returns
    -------
    index : int
        Chosen candidate.
    scores : (K, 4) float ndarray
        Columns ``score, inside, far, orphan`` per candidate.
    """
    cands = np.asarray(candidates, bool)
    if cands.ndim != 3 or len(cands) == 0:
        raise ValueError(f"candidates must be (K, H, W) with K >= 1, got shape {cands.shape}")
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    H, W = cands.shape[1:]
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, H - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, W - 1)
    if far_distance is None:
        far_distance = 0.5 * point_spacing(pts, default=max(H, W))
    if len(pts):
        seeds = np.ones((H, W), bool)
        seeds[iy, ix] = False
        far_map = ndi.distance_transform_edt(seeds) > far_distance
    else:
        far_map = np.ones((H, W), bool)
    scores = np.zeros((len(cands), 4))
    for k, fg in enumerate(cands):
        area = max(int(fg.sum()), 1)
        inside = float(fg[iy, ix].mean()) if len(pts) else 0.0
        far = float((fg & far_map).sum()) / area
        lab, n = ndi.label(fg)
        has_point = np.zeros(n + 1, bool)
        has_point[lab[iy, ix]] = True
        has_point[0] = True
        orphan = float(np.isin(lab, np.flatnonzero(~has_point)).sum()) / area if n else 0.0
        scores[k] = (inside - far - orphan, inside, far, orphan)
    ok = scores[:, 1] >= min_inside
    pool = np.flatnonzero(ok) if ok.any() else np.arange(len(cands))
    if level is not None:
        if thresholds is None or len(thresholds) != len(cands):
            raise ValueError("choosing by level needs one threshold per candidate")
        gap = np.abs(np.log(np.asarray(thresholds, np.float64)[pool] / level))
        return int(pool[np.argmin(gap)]), scores
    best = pool[np.argmax(scores[pool, 0])]
    return int(best), scores

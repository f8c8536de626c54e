"""The nucleus scale, the foreground level, and annotation of large cells at the reference scale."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from lociseg.annotate import (
    REF_DIAMETER,
    REF_NUCLEUS_DIAMETER,
    annotate_image,
    estimate_cell_scale,
    foreground_level,
    nucleus_diameter,
)


def _field(nucleus_d: float, cell_d: float, n: int = 5, size: int | None = None, seed: int = 0):
    """Nuclei (bright discs) inside dim cells (larger discs) on a grid, with noise."""
    rng = np.random.default_rng(seed)
    step = int(cell_d * 1.3)
    size = size or step * n
    yy, xx = np.mgrid[:size, :size]
    nuc = np.zeros((size, size), np.float32)
    cyto = np.zeros((size, size), np.float32)
    centres = []
    for i in range(n):
        for j in range(n):
            cy, cx = step * i + step // 2 + rng.integers(-2, 3), step * j + step // 2 + rng.integers(-2, 3)
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            nuc[r2 <= (nucleus_d / 2) ** 2] = 1.0
            cyto[r2 <= (cell_d / 2) ** 2] = 0.3 + 0.2 * rng.random()
            centres.append((cy, cx))
    nuc = ndi.gaussian_filter(nuc, 1.0) + 0.02 * rng.standard_normal(nuc.shape).astype(np.float32)
    cyto = ndi.gaussian_filter(cyto + 0.7 * nuc, 1.0) + 0.01 * rng.standard_normal(nuc.shape).astype(np.float32)
    return nuc, cyto, np.array(centres, np.float32)


@pytest.mark.parametrize("d", [8.0, 16.0, 40.0, 90.0])
def test_nucleus_diameter_follows_the_nuclei(d):
    nuc, _, _ = _field(d, 2 * d, n=4)
    est, count = nucleus_diameter(nuc)
    assert count >= 14  # small nuclei: one may touch the noise floor
    assert abs(est / d - 1) < 0.15


def test_nucleus_diameter_of_a_blank_image_is_nan():
    est, count = nucleus_diameter(np.zeros((64, 64), np.float32))
    assert np.isnan(est) and count == 0
    with pytest.raises(ValueError):
        nucleus_diameter(np.zeros((2, 8, 8)))


def test_cell_scale_is_relative_to_bbbc018():
    nuc, _, _ = _field(REF_NUCLEUS_DIAMETER * 3, 60, n=4)
    d, _ = estimate_cell_scale(nuc)
    assert abs(d / (3 * REF_DIAMETER) - 1) < 0.15


def test_foreground_level_separates_dim_cells_from_background():
    _, cyto, _ = _field(20, 60, n=4)
    level = foreground_level(cyto)
    from lociseg.transforms import normalize_percentile

    norm = normalize_percentile(cyto)
    cells = ndi.gaussian_filter(cyto, 3) > 0.15
    # the level lies between the background and the dim cell bodies, not at the bright nuclei
    assert np.median(norm[~cells]) < level < np.median(norm[cells])


def test_large_cells_are_annotated_at_the_reference_scale_and_mapped_back():
    nuc, cyto, centres = _field(40, 100, n=3)
    ann = annotate_image(nuc, cyto, diameter=estimate_cell_scale(nuc)[0])
    assert ann.candidates.shape[1:] == nuc.shape and ann.cells.shape == nuc.shape
    # one point per nucleus, on the input's pixel grid
    assert len(ann.points) == len(centres)
    d = np.linalg.norm(ann.points[:, None] - centres[None], axis=-1).min(1)
    assert d.max() < 4
    # each cell holds its nucleus and most of the dim body around it
    assert len(np.unique(ann.cells[ann.cells > 0])) == len(centres)
    areas = np.bincount(ann.cells.ravel())[1:]
    assert np.median(areas) > 0.6 * np.pi * 50**2

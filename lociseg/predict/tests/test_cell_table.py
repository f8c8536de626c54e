"""The per-cell table of ``lociseg segment`` (label, centroid, area, score)."""

from __future__ import annotations

import numpy as np

from lociseg.predict.table import cell_table


def test_cell_table_known_values_and_missing_ids():
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 1:4] = 1  # 6 px, centre (1.5, 2)
    labels[5, 7] = 3  # label 2 is absent
    t = cell_table(labels, scores=np.array([0.9, 0.5, 0.25]))
    assert t.label.tolist() == [1, 2, 3] and t.area.tolist() == [6, 0, 1] and t.area.dtype == np.int64
    np.testing.assert_array_equal(t.centroid_y, [1.5, np.nan, 5.0])
    np.testing.assert_array_equal(t.centroid_x, [2.0, np.nan, 7.0])
    np.testing.assert_allclose(t.score, [0.9, 0.5, 0.25])
    assert len(cell_table(np.zeros((3, 3), np.int32))) == 0


def test_cell_table_matches_pixel_sums(rng):
    labels = rng.integers(0, 40, (64, 48)) * (rng.random((64, 48)) < 0.7)
    t = cell_table(labels)
    yy, xx = np.indices(labels.shape)
    for k in range(1, labels.max() + 1):
        m = labels == k
        assert t.area[k - 1] == m.sum()
        if m.any():
            assert np.isclose(t.centroid_y[k - 1], yy[m].mean()) and np.isclose(t.centroid_x[k - 1], xx[m].mean())

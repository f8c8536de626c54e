"""Percentile normalisation of intensities (lociseg.transforms)."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.errors import InputError
from lociseg.transforms import normalize_percentile


def test_normalize_percentile_per_channel(rng):
    img = np.stack([rng.normal(100, 10, (50, 50)), rng.normal(1000, 300, (50, 50))]).astype(np.float32)
    out = normalize_percentile(img, 1, 99)
    assert out.dtype == np.float32 and out.shape == img.shape
    for c in out:
        assert np.percentile(c, 1) == pytest.approx(0, abs=1e-5)
        assert np.percentile(c, 99) == pytest.approx(1, abs=1e-5)


def test_normalize_constant_and_bad_values():
    const = np.full((2, 8, 8), 7, np.uint16)
    out = normalize_percentile(const)
    assert np.isfinite(out).all() and not out.any()
    bad = np.ones((1, 4, 4), np.float32)
    bad[0, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        normalize_percentile(bad)
    bad[0, 1, 1] = np.inf
    with pytest.raises(InputError, match="infinite"):
        normalize_percentile(bad)
    with pytest.raises(InputError, match="empty"):
        normalize_percentile(np.zeros((1, 0, 4)))

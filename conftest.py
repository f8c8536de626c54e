"""Shared pytest fixtures: where the real data lives, seeded RNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA_ROOT = Path(os.environ.get("LOCISEG_DATA", Path(__file__).resolve().parent.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Root of the shared real data sets; tests that need it skip (with a reason) when absent."""
    if not DATA_ROOT.is_dir():
        pytest.skip(f"real data not found at {DATA_ROOT} (set LOCISEG_DATA)")
    return DATA_ROOT


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _check_ngff(path: Path) -> dict:
    """Validate an OME-Zarr folder as NGFF 0.4 (image and every image-label) with ome-zarr-models.

    Returns the root attributes. Raises (fails the test) on invalid metadata.
    """
    import zarr
    from ome_zarr_models.v04 import Image, ImageLabel

    root = zarr.open_group(str(path), mode="r")
    Image.from_zarr(root)
    for name in root["labels"].attrs.get("labels", []) if "labels" in root else []:
        ImageLabel.from_zarr(root[f"labels/{name}"])
    return dict(root.attrs)


@pytest.fixture
def check_ngff():
    """:func:`_check_ngff`; skips without ome-zarr-models, fails instead under ``LOCISEG_REQUIRE_EXTRAS=1`` (CI)."""
    try:
        import ome_zarr_models  # noqa: F401
    except ModuleNotFoundError:
        if os.environ.get("LOCISEG_REQUIRE_EXTRAS") == "1":
            pytest.fail("LOCISEG_REQUIRE_EXTRAS=1 but ome-zarr-models is not installed")
        pytest.skip("ome-zarr-models not installed (pip install 'lociseg[export]')")
    return _check_ngff

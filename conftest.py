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

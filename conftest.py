"""Shared pytest fixtures: where the real data lives, seeded RNG, tiny synthetic training sets, file snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

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


def _disk_scenes(
    n: int = 2, size: int = 96, seed: int = 0, cells: int = 8
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two-channel uint16 images of bright disks (radius 7) and their instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.int32)
        for k in range(1, cells + 1):
            cy, cx = rng.integers(10, size - 10, 2)
            lab[((yy - cy) ** 2 + (xx - cx) ** 2 < 49) & (lab == 0)] = k
        fg = (lab > 0).astype(np.float64)
        img = np.stack([1000 + 3000 * fg, 500 + 2000 * fg]) + rng.normal(0, 100, (2, size, size))
        images.append(np.clip(img, 0, 65535).astype(np.uint16))
        labels.append(lab)
    return images, labels


def _write_scene_folder(folder: Path, images: list[np.ndarray], labels: list[np.ndarray]) -> Path:
    """Images and labels as a data set folder (``images/`` + ``masks/``, CYX TIFFs)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for k, (img, lab) in enumerate(zip(images, labels)):
        tifffile.imwrite(folder / "images" / f"im{k}.tif", img, photometric="minisblack", metadata={"axes": "CYX"})
        tifffile.imwrite(folder / "masks" / f"im{k}.tif", lab)
    return folder


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (hidden ones too): relative path -> (size, mtime in ns)."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


@pytest.fixture(scope="session")
def disk_scenes():
    """:func:`_disk_scenes`: ``disk_scenes(n=2, size=96, seed=0, cells=8) -> (images, labels)``."""
    return _disk_scenes


@pytest.fixture(scope="session")
def write_scene_folder():
    """:func:`_write_scene_folder`: ``write_scene_folder(folder, images, labels) -> folder``."""
    return _write_scene_folder


@pytest.fixture(scope="session")
def snapshot():
    """:func:`_snapshot`: ``snapshot(root)`` -> {relative path: (size, mtime ns)}, to show nothing was touched."""
    return _snapshot

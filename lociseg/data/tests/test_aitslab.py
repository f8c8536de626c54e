"""Aitslab U2OS: both folders load, channels and targets resolve, splits agree between cells and nuclei."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.data import load_dataset, load_split
from lociseg.errors import ConfigError


def test_cells_fields_channels_and_targets(data_root):
    ds = load_dataset("aitslab@test", root=data_root)
    assert len(ds) == 8 and list(ds.channel_names) == ["cell", "nucleus"]
    s = ds[0]
    assert s.image.shape == (2, 1104, 1104) and s.labels.shape == (1104, 1104)
    nuc = load_dataset("aitslab:nuclei@test", root=data_root, channels=["DNA"])[0]
    assert nuc.name == s.name and nuc.image.shape == (1, 1104, 1104)
    # the nucleus channel is brighter inside labelled nuclei than outside, and nuclei lie inside cells
    assert nuc.image[0][nuc.labels > 0].mean() > 2 * nuc.image[0][nuc.labels == 0].mean()
    assert np.mean(s.labels[nuc.labels > 0] > 0) > 0.9
    # cells are large (~110 px across), nuclei smaller
    cell_area = np.median(np.bincount(s.labels.ravel())[1:][np.bincount(s.labels.ravel())[1:] > 0])
    assert cell_area > 3 * np.median(np.bincount(nuc.labels.ravel())[1:][np.bincount(nuc.labels.ravel())[1:] > 0])


def test_nuclei_set_and_splits(data_root):
    ds = load_dataset("aitslab-nuclei", root=data_root)
    assert len(ds) == 50 and list(ds.channel_names) == ["nucleus"]
    cells, nuclei = load_split("aitslab"), load_split("aitslab-nuclei")
    for split in ("train", "val", "test"):
        assert set(cells[split]) <= set(nuclei[split])  # a field never changes split between the two
    assert not set(nuclei["train"]) & set(nuclei["test"])
    with pytest.raises(ConfigError):
        load_dataset("koyuncu:nuclei", root=data_root)

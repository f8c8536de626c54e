"""DeepCell, Usiigaci, Coelho 2009 and the tissue T cells: channels, labels, groups and stored splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lociseg.data import load_dataset, load_split
from lociseg.data.splits import make_splits
from lociseg.errors import ConfigError


def _median_diameter(labels: np.ndarray) -> float:
    areas = np.bincount(labels.ravel())[1:]
    return float(np.median(2 * np.sqrt(areas[areas > 0] / np.pi)))


def test_deepcell_channels_lines_and_nucleus_target(data_root):
    ds = load_dataset("deepcell@test", root=data_root)
    assert list(ds.channel_names) == ["phase", "nucleus"] and len(ds) == 5
    groups = {ds[i].meta["group"] for i in range(len(ds))}
    assert groups == {"3T3", "BMDM", "HeLa-S3", "MCF10A", "RAW264.7"}  # one test field per line
    s = load_dataset("deepcell", root=data_root, channels=["nucleus"])[0]
    assert s.image.shape[0] == 1 and s.image.dtype == np.uint16
    # nuclear signal is brighter inside cells than outside
    assert s.image[0][s.labels > 0].mean() > s.image[0][s.labels == 0].mean()
    nuc = load_dataset("deepcell:nuclei", root=data_root, channels=["nucleus"])
    assert len(nuc) == 3 and _median_diameter(nuc[0].labels) < _median_diameter(load_dataset("deepcell")[3].labels)
    assert [n for n in load_split("deepcell")["train"] if n in nuc.names]  # a nucleus field in the train split
    assert len(load_dataset("deepcell:nuclei@train", root=data_root)) >= 1


def test_single_channel_sets_and_sizes(data_root):
    phase = load_dataset("usiigaci@train", root=data_root)
    assert list(phase.channel_names) == ["phase"] and phase[0].image.shape == (1, 1022, 1024)
    nuclei = load_dataset("coelho@test", root=data_root, channels=["nucleus"])
    s = nuclei[0]
    assert s.image.shape == (1, 1030, 1349) and 80 < _median_diameter(s.labels) < 140  # ~110 px nuclei
    with pytest.raises(ConfigError):
        load_dataset("coelho", root=data_root, channels=["phase"])
    with pytest.raises(ConfigError):
        load_dataset("usiigaci:nuclei", root=data_root)


def test_tcells_partial_labels_and_position_split(data_root):
    ds = load_dataset("tcells@test", root=data_root)
    s = ds[0]
    assert list(ds.channel_names) == ["membrane", "DAPI"] and s.meta["partial_labels"] is True
    assert ds.info["partial_labels"] is True
    split = load_split("tcells")
    positions = {k: {n.rsplit("_", 1)[0] for n in v} for k, v in split.items()}
    assert not positions["train"] & positions["test"] and not positions["val"] & positions["test"]
    assert len(split["train"]) == 4  # Position8's three markers stay together


def test_stored_splits_are_what_the_rules_make(data_root):
    made = make_splits(Path(data_root))
    for name in ("deepcell", "usiigaci", "coelho", "tcells"):
        stored = load_split(name)
        assert {k: sorted(v) for k, v in stored.items()} == {k: sorted(made[name][k]) for k in stored}
        assert not set(stored["train"]) & set(stored["test"])

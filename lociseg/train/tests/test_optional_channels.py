"""A set that lacks a model's optional channel trains with zero planes there; a required one is an error."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.errors import ConfigError
from lociseg.train import ExperimentConfig
from lociseg.train.data import load_samples_for


def test_phase_contrast_set_gets_a_zero_nucleus_plane(data_root, monkeypatch):
    monkeypatch.setenv("LOCISEG_DATA", str(data_root))
    cfg = ExperimentConfig().override({"data.channels": ["cell", "nucleus"], "lacss.input.optional": ["nucleus"]})
    phase, two = load_samples_for(cfg, ["usiigaci@val", "aitslab@val"])[:1], load_samples_for(cfg, ["aitslab@val"])
    assert phase[0].image.shape[0] == 2 and not phase[0].image[1].any() and phase[0].image[0].any()
    assert two[0].image.shape[0] == 2 and two[0].image[1].any()  # a set that has the channel keeps it
    required = ExperimentConfig().override({"data.channels": ["cell", "nucleus"]})
    with pytest.raises(ConfigError, match="nucleus"):
        load_samples_for(required, ["usiigaci@val"])
    cell_optional = ExperimentConfig().override(
        {"data.channels": ["cell", "nucleus"], "lacss.input.optional": ["cell"]}
    )
    with pytest.raises(ConfigError):  # only trailing channels may be absent
        load_samples_for(cell_optional, ["coelho@val"])
    assert np.asarray(phase[0].labels).max() > 0

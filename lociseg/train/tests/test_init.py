"""``init``: fine-tuning starts from a trained model's weights; integer channel indices in the config."""

from __future__ import annotations

import pytest
import torch

from lociseg.config import to_dict
from lociseg.errors import ConfigError
from lociseg.models.checkpoint import load_checkpoint, model_config
from lociseg.models.pretrained import resolve_model
from lociseg.models.registry import build_model
from lociseg.train.checkpoint import init_weights
from lociseg.train.config import ExperimentConfig


def _config(**lacss) -> ExperimentConfig:
    section = to_dict(model_config(resolve_model("cells")))
    section.update(lacss)
    return ExperimentConfig.from_dict({"lacss": section, "init": "cells"})


def test_init_copies_the_shipped_weights():
    cfg = _config()
    model = build_model(cfg.model)
    shipped = load_checkpoint(resolve_model("cells")).state_dict()
    key = next(k for k, v in shipped.items() if v.dtype.is_floating_point and v.numel() > 100)
    assert not torch.equal(model.state_dict()[key], shipped[key])  # random before
    init_weights(model, cfg)
    assert all(torch.equal(v, shipped[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "change, words",
    [
        ({"input": {"in_channels": 1}}, "channel"),
        ({"input": {"target_diameter": 20.0}}, "target_diameter"),
        ({"fpn_channels": 32}, "do not fit"),
    ],
)
def test_init_refuses_another_model(change, words):
    section = to_dict(model_config(resolve_model("cells")))
    for k, v in change.items():
        section[k] = {**section[k], **v} if isinstance(v, dict) else v
    cfg = ExperimentConfig.from_dict({"lacss": section, "init": "cells"})
    with pytest.raises(ConfigError, match=words):
        init_weights(build_model(cfg.model), cfg)


def test_init_unknown_name_is_one_config_error():
    cfg = _config().override({"init": "no-such-model"})
    with pytest.raises(ConfigError, match="no shipped model"):
        init_weights(build_model(cfg.model), cfg)


def test_channels_take_integers():
    cfg = ExperimentConfig().override({"data.channels": [1, 0]})
    assert cfg.data.channels == [1, 0]
    assert ExperimentConfig.from_yaml(cfg.to_yaml()).data.channels == [1, 0]
    assert ExperimentConfig().override({"data.channels": ["actin", 0]}).data.channels == ["actin", 0]

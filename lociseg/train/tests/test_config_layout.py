"""Readable configs (issue 19): sparse files, one model section, old layouts still load."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path

import pytest
import yaml

from lociseg.cli.main import run
from lociseg.errors import ConfigError
from lociseg.models.checkpoint import upgrade_config
from lociseg.train.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[3]
#: ``ExperimentConfig.from_yaml(f).to_dict()`` of every shipped config, made by the code of
#: commit e3aac17, before the configs were made sparse and the unread options removed.
SNAPSHOT = json.loads((Path(__file__).parent / "data" / "resolved_configs_v1.json").read_text())
REMOVED = [
    ("lacss", "weak", "mode"),
    ("unet", "in_channels"),
    ("unet", "lr"),
    ("unet", "batch_size"),
    ("unet", "crop_size"),
]
# options added since the snapshot, with the defaults that keep old behaviour
ADDED = {
    ("optim", "checkpoint_every"): 200,
    ("optim", "checkpoint_minutes"): 10.0,
    ("init",): "",
    # issue 25: crops anywhere, the points-mode background from the point distance
    ("data", "sampler"): "random",
    ("lacss", "weak", "background_source"): "points",
    # issue 33: a deliberate change for weak configs (None: the location prior is on in weak, weak+aux)
    ("lacss", "seghead", "location_prior"): None,
    # issue 31: training speed options (channels-last changes only the float rounding of the losses)
    ("optim", "channels_last"): True,
    ("optim", "compile"): False,
    ("optim", "cpu_bf16"): False,
    # imaging augmentations (issue 21): off (probability 0) unless asked for
    **{
        ("data", "augment", k): v
        for k, v in {
            "illumination_p": 0.0,
            "illumination": 0.5,
            "dim_p": 0.0,
            "dim_min": 0.3,
            "offset_p": 0.0,
            "offset_max": 0.5,
            "shot_noise_p": 0.0,
            "photons_min": 100.0,
            "read_noise": 0.02,
            "saturate_p": 0.0,
            "saturate_quantile": 0.8,
            "quantize_p": 0.0,
            "quantize_bits": 8,
            "blank_channel_p": 0.0,
        }.items()
    },
}


#: Deliberate changes to a config since the snapshot, by file: (path, new value).
CHANGED: dict[str, list[tuple[tuple[str, ...], object]]] = {
    # the nuclear channel by name: index 0 was Koyuncu's nearly empty red plane and DSB2018's red plane
    "configs/nuclei_supervised.yaml": [(("data", "channels"), ["nuclei"])],
}
#: Shipped models retrained since the snapshot: their config.yaml records a new run, not a rewrite.
RETRAINED = {"lociseg/models/pretrained/cells/config.yaml", "lociseg/models/pretrained/nuclei/config.yaml"}


def _node(tree: dict, parents: list[str]) -> dict:
    for p in parents:
        tree = tree[p]
    return tree


#: Input options added since the snapshot (in the model's own section), with the defaults that keep old behaviour.
ADDED_INPUT = {
    "optional": [],  # issue 31: no channel may be absent
    "scale_range": [],  # issue 32: always rescale to the target diameter
}
#: Configs added since the snapshot: they must resolve with no warning, sparse like the others.
NEW_CONFIGS = {"configs/cells_generalist.yaml", "configs/nuclei_generalist.yaml"}


def _expected(old: dict, name: str) -> dict:
    new = copy.deepcopy(old)
    for *parents, key in REMOVED:
        del _node(new, parents)[key]
    del new["unet" if new["model_type"] == "lacss" else "lacss"]
    for (*parents, key), value in [*ADDED.items(), *CHANGED.get(name, [])]:
        _node(new, parents)[key] = value
    new[new["model_type"]]["input"].update(copy.deepcopy(ADDED_INPUT))
    return new


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_resolved_config_unchanged_but_for_the_removed_options(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = ExperimentConfig.from_yaml(ROOT / name).to_dict()
    if name in RETRAINED:  # a new training run: it must still resolve with no warning, in today's layout
        assert set(resolved) == set(_expected(SNAPSHOT[name], name))
        return
    assert resolved == _expected(SNAPSHOT[name], name)


def test_snapshot_covers_every_shipped_config():
    shipped = {str(p.relative_to(ROOT)) for p in ROOT.glob("configs/*.yaml")}
    shipped |= {str(p.relative_to(ROOT)) for p in ROOT.glob("lociseg/models/pretrained/*/config.yaml")}
    assert shipped == set(SNAPSHOT) | NEW_CONFIGS
    for name in NEW_CONFIGS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ExperimentConfig.from_yaml(ROOT / name)


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_sparse(path):
    data = yaml.safe_load(path.read_text())
    defaults = ExperimentConfig(model_type=data.get("model_type", "lacss")).to_dict()

    def same_as_default(node, dflt, where):
        for key, value in node.items():
            if isinstance(value, dict):
                same_as_default(value, dflt[key], f"{where}{key}.")
            else:
                assert value != dflt[key], f"{path.name}: {where}{key} repeats its default"

    same_as_default(data, defaults, "")
    assert len(path.read_text().splitlines()) <= 25


def test_saved_config_holds_one_model_section_and_round_trips(tmp_path):
    for model_type, other in (("lacss", "unet"), ("unet", "lacss")):
        cfg = ExperimentConfig().override({"model_type": model_type, "unet.depth": 3, "lacss.max_instances": 7})
        text = cfg.to_yaml(tmp_path / "config.yaml")
        data = yaml.safe_load(text)
        assert model_type in data and other not in data
        back = ExperimentConfig.from_yaml(tmp_path / "config.yaml")
        assert back.to_dict() == cfg.to_dict()
        assert back.model == cfg.model


def test_upgrade_config_drops_and_renames_old_options(caplog):
    old = {
        "model_type": "unet",
        "lacss": {"weak": {"mode": "points", "weight": 2.0}},
        "unet": {"in_channels": 1, "lr": 0.01, "batch_size": 5, "crop_size": 256, "depth": 3},
    }
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = ExperimentConfig.from_dict(old)
    assert not caplog.records
    assert old["unet"]["in_channels"] == 1  # the caller's mapping is left alone
    assert cfg.unet.input.in_channels == 1 and cfg.unet.depth == 3 and cfg.lacss.weak.weight == 2.0
    # an explicit input.in_channels wins over the old mirror field
    assert upgrade_config({"unet": {"in_channels": 1, "input": {"in_channels": 3}}}) == {
        "unet": {"input": {"in_channels": 3}}
    }
    with pytest.raises(ConfigError, match="unknown option"):
        ExperimentConfig.from_dict({"unet": {"learning_rate": 0.1}})  # typos are still errors


def test_print_config_prints_every_default_of_the_chosen_model_type(capsys):
    assert run(["train", "--print-config", "--set", "model_type=unet"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == ExperimentConfig(model_type="unet").to_dict() and "lacss" not in printed
    assert run(["train", "-c", str(ROOT / "configs/bbbc018_cells_weak.yaml"), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["lacss"]["mode"] == "weak" and printed["lacss"]["lpn"]["radius"] == 6.0 and "unet" not in printed

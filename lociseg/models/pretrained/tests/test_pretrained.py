"""Shipped-model registry: packaging a real checkpoint, hash check, names, defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lociseg.errors import ConfigError, InputError
from lociseg.io.files import sha256_file
from lociseg.models import pretrained as P
from lociseg.models.pretrained.package import package_model

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small (untrained) LACSS checkpoint written by the training code."""
    from lociseg.models import LacssModel
    from lociseg.models.checkpoint import save_checkpoint
    from lociseg.train.config import ExperimentConfig

    cfg = ExperimentConfig()
    cfg.lacss.input.channels = ["DNA"]
    cfg.lacss.input.in_channels = 1
    cfg.data.train = ["dsb2018-train"]
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "best"
    save_checkpoint(path, LacssModel(cfg.lacss), cfg, {"test": {"f1_50": 0.81, "ap50": 0.77}})
    return path


def test_package_then_resolve_and_load(tmp_path, checkpoint):
    reg = tmp_path / "reg"
    dest = package_model(
        checkpoint.parent,
        "nuclei",
        registry=reg,
        description="Nuclei, one channel.",
        command="lociseg train nuclei.yaml",
    )
    manifest = json.loads((reg / "manifest.json").read_text())
    rec = manifest["models"]["nuclei"]
    assert rec["file"] == "nuclei/model.safetensors" and rec["channels"] == ["DNA"]
    assert rec["sha256"] == sha256_file(dest / "model.safetensors")
    card = (dest / "MODEL_CARD.md").read_text()
    assert f"sha256: {rec['sha256']}" in card and "dsb2018-train" in card
    assert "| test.f1_50 | 0.81 |" in card and "lociseg train nuclei.yaml" in card
    assert list(P.available_models(reg)) == ["nuclei"]
    assert P.resolve_model("nuclei", registry=reg) == dest
    assert P.verify_model(dest) == rec["sha256"]  # from the card alone
    # the folder loads as a checkpoint and predicts like the original
    from lociseg.models.checkpoint import load_checkpoint

    a, b = load_checkpoint(checkpoint), load_checkpoint(dest)
    x = torch.rand(1, 1, 64, 64)
    for u, v in zip(a(x), b(x)):
        assert torch.equal(u, v)
    with pytest.raises(ConfigError, match="exists"):
        package_model(checkpoint, "nuclei", registry=reg)


def test_corrupt_weights_refused(tmp_path, checkpoint):
    reg = tmp_path / "reg"
    dest = package_model(checkpoint, "cells", registry=reg)
    data = bytearray((dest / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor: still loads, wrong weights
    (dest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt or were replaced"):
        P.resolve_model("cells", registry=reg)
    with pytest.raises(InputError, match="corrupt"):
        P.verify_model(dest)
    assert P.resolve_model("cells", registry=reg, verify=False) == dest
    (dest / "model.safetensors").unlink()
    assert P.available_models(reg) == {}
    with pytest.raises(InputError, match="missing"):
        P.resolve_model("cells", registry=reg)


def test_unknown_name_lists_available(tmp_path, checkpoint):
    reg = tmp_path / "reg"
    package_model(checkpoint, "nuclei", registry=reg)
    with pytest.raises(ConfigError, match=r"no shipped model named 'cyto'.*available: nuclei"):
        P.resolve_model("cyto", registry=reg)
    with pytest.raises(ConfigError, match="none installed"):
        P.resolve_model("nuclei", registry=tmp_path / "empty")


def test_size_limit_and_bad_name(tmp_path, checkpoint):
    with pytest.raises(InputError, match="over the"):
        package_model(checkpoint, "big", registry=tmp_path, max_bytes=1000)
    with pytest.raises(ConfigError, match="model name"):
        package_model(checkpoint, "../evil", registry=tmp_path)


def test_damaged_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="damaged model manifest"):
        P.available_models(tmp_path)


def test_pick_default_model():
    assert P.pick_default_model(1) == "nuclei" and P.pick_default_model(2) == "cells"
    with pytest.raises(ConfigError, match="3-channel"):
        P.pick_default_model(3)


def test_shipped_manifest_is_consistent():
    """Every model listed in the package's own manifest is present and matches its hash and size."""
    manifest = P.read_manifest()
    assert {"cells", "nuclei"} <= set(manifest)  # the shipped models of docs/models.md
    for name, entry in manifest.items():
        assert P.resolve_model(name) == P.REGISTRY / name  # resolve_model checks the sha256
        assert entry.size == (P.REGISTRY / entry.file).stat().st_size <= 16 * 2**20


def test_package_script(tmp_path, checkpoint):
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "package_model.py"),
            str(checkpoint),
            "nuclei",
            "--registry",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "packaged 'nuclei'" in r.stdout and (tmp_path / "nuclei" / "MODEL_CARD.md").is_file()
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "package_model.py"),
            str(tmp_path / "none"),
            "x",
            "--registry",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "no checkpoint" in r.stderr

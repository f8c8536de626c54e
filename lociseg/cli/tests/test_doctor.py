"""``lociseg doctor``: report sections, corrupt model detected, JSON output."""

from __future__ import annotations

import json

import pytest
import torch

from lociseg.cli import doctor
from lociseg.cli.main import run


@pytest.fixture
def registry(tmp_path):
    from lociseg.models import LacssModel
    from lociseg.models.checkpoint import save_checkpoint
    from lociseg.models.pretrained.package import package_model
    from lociseg.train.config import ExperimentConfig

    cfg = ExperimentConfig()
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", LacssModel(cfg.lacss), cfg)
    package_model(tmp_path / "ck", "cells", registry=tmp_path / "reg")
    return tmp_path / "reg"


def test_json_report_has_every_section(capsys):
    rc = run(["doctor", "--json", "--no-load"])
    checks = json.loads(capsys.readouterr().out)
    sections = {c["section"] for c in checks}
    assert {"versions", "optional", "device", "models", "data"} <= sections
    torch_line = next(c for c in checks if c["name"] == "torch")
    assert torch_line["status"] == "ok" and torch_line["detail"] == torch.__version__
    assert rc == (1 if any(c["status"] == "fail" for c in checks) else 0)


def test_models_ok_then_corrupt(registry):
    ok = {c.name: c for c in doctor.check_models(registry)}
    assert ok["cells"].status == "ok" and "loads" in ok["cells"].detail
    assert ok["nuclei"].status == "warn"  # default not shipped
    w = registry / "cells" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    bad = {c.name: c for c in doctor.check_models(registry)}
    assert bad["cells"].status == "fail" and "corrupt" in bad["cells"].detail


def test_exit_1_on_failure(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_models", lambda load=True: [doctor.Check("models", "cells", "fail", "corrupt")])
    assert run(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "[FAIL] cells" in captured.out and "1 problem(s): models/cells" in captured.err


def test_data_root_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCISEG_DATA", str(tmp_path / "nowhere"))
    (c,) = doctor.check_data()
    assert c.status == "warn" and "nowhere" in c.detail

"""``lociseg demo`` and run_demo with threshold test-double models on the shared data."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from lociseg.cli.main import run
from lociseg.models.base import InputSpec, SegmentationModel
from lociseg.models.semantic import labels_to_instances
from lociseg.predict import api
from lociseg.report.demo import run_demo


def _double(in_channels: int):
    class Cfg:
        input = InputSpec(in_channels=in_channels, channels=["actin", "DNA"][-in_channels:], target_diameter=24)

    class Threshold(SegmentationModel):
        """Bright regions of the last (nuclear) channel are the cells."""

        config = Cfg()

        def predict_instances(self, image: torch.Tensor):
            return labels_to_instances(ndi.label(image[0, -1].numpy() > 0.3)[0])

    return api.Segmenter(Threshold(), device="cpu", name=f"threshold-{in_channels}ch")


def test_run_demo_both_kinds(tmp_path, data_root):
    index = run_demo(tmp_path, {"cells": _double(2), "nuclei": _double(1)}, per_set=1, root=data_root, progress=False)
    page = index.read_text()
    for spec in ("cellprofiler-human", "bbbc018@test", "dsb2018-test", "koyuncu@test"):
        assert spec in page
    assert page.count("Against ground truth") == 3  # the CellProfiler field has no labels
    assert len(list(tmp_path.glob("*.png"))) == 4 and len(list(tmp_path.glob("*.cells.csv"))) == 4
    # the DNA threshold finds nuclei on the DSB image: a plausible count, not zero
    csv = next(tmp_path.glob("dsb2018-test*.cells.csv"))
    assert len(np.genfromtxt(csv, delimiter=",", names=True)) > 3


def test_cli_with_model_option(tmp_path, data_root, monkeypatch, capsys):
    monkeypatch.setenv("LOCISEG_DATA", str(data_root))
    monkeypatch.setattr(api, "load_model", lambda name, device="auto": _double(1))
    assert run(["demo", "--model", "x", "-n", "1", "-o", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert "dsb2018-test" in page and "bbbc018" not in page  # a 1-channel model runs the nuclei sets only


def test_cli_without_models_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from lociseg.errors import ConfigError

    def missing(name, device="auto"):
        raise ConfigError(f"no shipped model named {name!r}")

    monkeypatch.setattr(api, "load_model", missing)
    assert run(["demo", "-o", str(tmp_path)]) == 2
    assert "pass --model" in capsys.readouterr().err


def test_cli_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCISEG_DATA", str(tmp_path / "none"))
    monkeypatch.setattr(api, "load_model", lambda name, device="auto": _double(2))
    assert run(["demo", "-m", "x", "-o", str(tmp_path / "r")]) == 2
    assert "none" in capsys.readouterr().err

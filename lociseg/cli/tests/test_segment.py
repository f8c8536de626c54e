"""``lociseg segment``: batch over files/folders/globs, bad files, skip/overwrite, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage as ndi

from lociseg.cli.main import run
from lociseg.io import read_labels
from lociseg.models.base import InputSpec, SegmentationModel
from lociseg.models.semantic import labels_to_instances
from lociseg.predict import api
from lociseg.structures import Instances


class _Cfg:
    input = InputSpec(in_channels=1, channels=["grey"], target_diameter=16)


class ThresholdModel(SegmentationModel):
    """Test double: cells are the bright connected regions of channel 0."""

    config = _Cfg()

    def predict_instances(self, image: torch.Tensor) -> Instances:
        return labels_to_instances(ndi.label(image[0, 0].numpy() > 0.5)[0])


@pytest.fixture
def fake_model(monkeypatch):
    loaded = []

    def load(name, device="auto", backend="torch"):
        if name == "missing":
            from lociseg.errors import ConfigError

            raise ConfigError("no model file 'missing'")
        loaded.append(name)
        return api.Segmenter(ThresholdModel(), device="cpu", name=str(name))

    monkeypatch.setattr(api, "load_model", load)
    return loaded


def _write_cells(path, n):
    img = np.full((64, 80), 10, np.uint8)
    for k in range(n):
        img[5 + 12 * (k // 5) : 13 + 12 * (k // 5), 4 + 15 * (k % 5) : 14 + 15 * (k % 5)] = 200
    Image.fromarray(img).save(path)


def test_batch_with_bad_file_in_the_middle(tmp_path, fake_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write_cells(src / "a.png", 3)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # corrupt
    _write_cells(src / "c.png", 7)
    out = tmp_path / "out"
    rc = run(["segment", str(src), "--model", "m.pt", "--out", str(out), "--diameter", "8"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "1 failure" in err and "b.png" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "a.csv",
        "a.lociseg.json",
        "a.tif",
        "c.csv",
        "c.lociseg.json",
        "c.tif",
    ]
    assert read_labels(out / "a.tif").max() == 3 and read_labels(out / "c.tif").max() == 7
    meta = json.loads((out / "c.lociseg.json").read_text())
    assert meta["diameter_used"] == 8 and meta["model"] == "m.pt" and meta["input"].endswith("c.png")
    assert meta["overlaps"] == "score"
    assert len((out / "c.csv").read_text().splitlines()) == 8
    assert not list(out.glob(".*"))  # no temporary files left


def test_skip_existing_overwrite_and_globs(tmp_path, fake_model, capsys):
    for name, n in [("x1.png", 2), ("x2.png", 4)]:
        _write_cells(tmp_path / name, n)
    out = tmp_path / "out"
    pattern = str(tmp_path / "x*.png")
    assert run(["segment", pattern, "-m", "m", "-o", str(out), "-d", "8"]) == 0
    # existing outputs are not replaced silently
    assert run(["segment", pattern, "-m", "m", "-o", str(out), "-d", "8"]) == 1
    assert "outputs exist" in capsys.readouterr().err
    assert run(["segment", pattern, "-m", "m", "-o", str(out), "-d", "8", "--skip-existing"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    _write_cells(tmp_path / "x1.png", 5)
    assert run(["segment", str(tmp_path / "x1.png"), "-m", "m", "-o", str(out), "-d", "8", "--overwrite"]) == 0
    assert read_labels(out / "x1.tif").max() == 5


def test_diameter_estimated_per_image_and_channel_errors(tmp_path, fake_model, capsys):
    _write_cells(tmp_path / "a.png", 4)
    rgb = np.stack([np.asarray(Image.open(tmp_path / "a.png"))] * 3, -1)
    rgb[..., 1] = 0  # not grey: needs --channels
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = tmp_path / "out"
    assert run(["segment", str(tmp_path / "a.png"), str(tmp_path / "rgb.png"), "-m", "m", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "rgb.png" in err and "3 channel(s) but the model takes 1" in err
    meta = json.loads((out / "a.lociseg.json").read_text())
    assert meta["diameter_estimated"] is True and meta["diameter_used"] == pytest.approx(
        2 * np.sqrt(80 / np.pi), rel=0.15
    )
    assert run(["segment", str(tmp_path / "rgb.png"), "-m", "m", "-o", str(out), "--channels", "0", "-d", "8"]) == 0
    assert read_labels(out / "rgb.tif").max() == 4


def test_user_errors_exit_2(tmp_path, fake_model, capsys):
    _write_cells(tmp_path / "a.png", 1)
    assert run(["segment", str(tmp_path / "nothing*.png"), "-m", "m", "-o", str(tmp_path)]) == 2
    assert run(["segment", str(tmp_path / "a.png"), "-m", "missing", "-o", str(tmp_path / "o")]) == 2
    assert run(["segment", str(tmp_path / "a.png"), "-m", "m", "-o", str(tmp_path / "o"), "-d", "-1"]) == 2
    assert run(["segment", str(tmp_path / "a.png"), "-m", "m", "-o", str(tmp_path / "o"), "--overlaps", "area"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no image files" in err and "missing" in err


def test_segment_accepts_a_data_set_spec(tmp_path, data_root, monkeypatch):
    """Images stored as one file per channel (CellProfiler examples) are read through their data set spec."""

    from lociseg.models import LacssModel
    from lociseg.models.checkpoint import save_checkpoint
    from lociseg.train.config import ExperimentConfig

    monkeypatch.setenv("LOCISEG_DATA", str(data_root))
    cfg = ExperimentConfig()
    save_checkpoint(tmp_path / "ck", LacssModel(cfg.lacss), cfg)
    rc = run(
        ["segment", "cellprofiler-human", "-m", str(tmp_path / "ck"), "-o", str(tmp_path / "seg"), "--diameter", "25"]
    )
    assert rc == 0
    assert [p.name for p in (tmp_path / "seg").glob("*.tif")] == ["AS_09125_050116030001_D03f00.tif"]


def test_no_model_picks_the_shipped_default_by_channel_count(tmp_path, data_root):
    """Without --model a 2-channel image gets 'cells' and a 1-channel one 'nuclei' (real BBBC018 crop)."""
    import tifffile

    from lociseg.data import load_dataset

    img = np.asarray(load_dataset("bbbc018@test", root=data_root, channels=["actin", "DNA"])[0].image)[:, :256, :256]
    tifffile.imwrite(tmp_path / "two.tif", img)
    tifffile.imwrite(tmp_path / "one.tif", img[1])
    code = run(
        [
            "segment",
            str(tmp_path / "two.tif"),
            str(tmp_path / "one.tif"),
            "-o",
            str(tmp_path / "seg"),
            "--diameter",
            "23",
        ]
    )
    assert code == 0
    meta = {n: json.loads((tmp_path / "seg" / f"{n}.lociseg.json").read_text()) for n in ("two", "one")}
    assert meta["two"]["model"] == "cells" and meta["one"]["model"] == "nuclei"
    assert meta["two"]["cells"] > 0


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    img = tmp_path / "img.tif"
    import tifffile

    tifffile.imwrite(img, np.zeros((2, 64, 64), np.uint16))
    assert run(["segment", str(img), "-o", str(blocker / "out"), "-d", "20"]) == 2
    err = capsys.readouterr().err
    assert "output folder is not writable" in err and "Traceback" not in err


def test_diameter_train_uses_the_checkpoint_training_diameter(tmp_path, capsys):
    """``--diameter train`` reads the diameter recorded beside the weights; bad values are one-line errors."""
    import tifffile

    from lociseg.models import LacssModel
    from lociseg.models.checkpoint import save_checkpoint
    from lociseg.train.config import ExperimentConfig

    cfg = ExperimentConfig()
    cfg.lacss.input.in_channels = 1
    save_checkpoint(tmp_path / "ck", LacssModel(cfg.lacss), cfg, {"diameter": 17.5})
    save_checkpoint(tmp_path / "bare", LacssModel(cfg.lacss), cfg)
    tifffile.imwrite(tmp_path / "img.tif", np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8))
    assert api.load_model(tmp_path / "ck", device="cpu").train_diameter == 17.5
    assert api.load_model(tmp_path / "bare", device="cpu").train_diameter is None
    rc = run(
        [
            "segment",
            str(tmp_path / "img.tif"),
            "-m",
            str(tmp_path / "ck"),
            "-o",
            str(tmp_path / "seg"),
            "--diameter",
            "train",
        ]
    )
    assert rc == 0
    assert json.loads((tmp_path / "seg" / "img.lociseg.json").read_text())["diameter_used"] == 17.5
    rc = run(
        [
            "segment",
            str(tmp_path / "img.tif"),
            "-m",
            str(tmp_path / "bare"),
            "-o",
            str(tmp_path / "seg2"),
            "--diameter",
            "train",
        ]
    )
    assert rc == 2 and "no training diameter" in capsys.readouterr().err  # before any image is read
    for bad in ("big", "-3"):
        assert (
            run(
                [
                    "segment",
                    str(tmp_path / "img.tif"),
                    "-m",
                    str(tmp_path / "ck"),
                    "-o",
                    str(tmp_path / "seg3"),
                    "--diameter",
                    bad,
                ]
            )
            == 2
        )


def test_log_says_scale_and_confidence(tmp_path, fake_model, capsys):
    _write_cells(tmp_path / "a.png", 4)
    out = tmp_path / "out"
    assert run(["segment", str(tmp_path / "a.png"), "-m", "m", "-o", str(out)]) == 0
    assert run(["segment", str(tmp_path / "a.png"), "-m", "m", "-o", str(out), "-d", "8", "--overwrite"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "a: diameter" in x]
    assert len(lines) == 2 and "estimated, confidence 1.00" in lines[0] and "(given)" in lines[1]
    assert "4 cells, 100% with a high score" in lines[1]
    meta = json.loads((out / "a.lociseg.json").read_text())
    assert meta["high_score_fraction"] == 1.0 and meta["diameter_estimated"] is False

"""``lociseg adapt`` on small real crops: end to end, resume after SIGTERM, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lociseg.cli.main import run
from lociseg.io import read_labels
from lociseg.predict.api import load_model


@pytest.fixture(scope="module")
def crops(data_root, tmp_path_factory) -> list[np.ndarray]:
    """Two BBBC018 test fields, (DNA, actin), cropped to 256 px."""
    from lociseg.data import load_dataset

    ds = load_dataset("bbbc018@test", channels=["DNA", "actin"])
    return [ds[n].image[:, 128:384, 128:384] for n in ds.names[:2]]


def _write(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        tifffile.imwrite(folder / f"{name}.tif", img)
    return folder


def _adapt(inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["adapt", str(inputs), "-o", str(out), "--nucleus", "0", "--cytoplasm", "1", *extra]


def test_adapt_end_to_end(crops, tmp_path, capsys):
    imgs = _write(tmp_path / "imgs", {"a": crops[0], "b": crops[1]})
    out = tmp_path / "adapted"
    assert run(_adapt(imgs, out, "--steps", "2", "--minutes", "1")) == 0
    info = json.loads((out / "adapt.json").read_text())
    assert info["images"] == ["a", "b"] and info["skipped"] == {} and info["train"]["step"] == 2
    # the folder is a model: it loads by path and records where it started from
    seg = load_model(out)
    assert seg.spec.in_channels == 2
    assert "init:" in (out / "config.yaml").read_text()
    labels = read_labels(out / "segmentation" / "a.tif")
    assert labels.shape == (256, 256) and labels.max() > 5
    page = (out / "report" / "index.html").read_text()
    for part in ("Training loss", "sheets/a.png", "a.machine.png", "a.final.png", "a.before.png", "evidence"):
        assert part in page
    # --targets evidence (the default) records each image's lead, the cells dropped and the agreement
    for name in ("a", "b"):
        meta = json.loads((out / "annotations" / f"{name}.meta.json").read_text())
        assert meta["targets"].startswith("evidence (") and 0 <= meta["agreement"] <= 1
    # the label-free quality estimate: per image in adapt.json and the sidecar, the worst image flagged
    assert set(info["quality"]) == {"a", "b"} and len(info["look_first"]) == 1
    worst = min(info["quality"], key=lambda n: info["quality"][n]["quality"])
    assert info["look_first"] == [worst] and "Look at these first" in page
    sidecar = json.loads((out / "segmentation" / "a.lociseg.json").read_text())
    assert 0 <= sidecar["quality"]["quality"] <= 1
    assert (out / "report" / "sheets" / "b.png").is_file()
    # a second run into the same folder is refused, not mixed in
    assert run(_adapt(imgs, out, "--steps", "2")) == 2
    assert "--resume" in capsys.readouterr().err


def test_adapt_resume_after_sigterm(crops, tmp_path):
    imgs = _write(tmp_path / "imgs", {"a": crops[0], "b": crops[1]})
    out = tmp_path / "adapted"
    cmd = [sys.executable, "-m", "lociseg", *_adapt(imgs, out, "--steps", "5000", "--minutes", "30")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        log = out / "log.csv"
        if log.is_file() and len(log.read_text().splitlines()) > 1:  # training has taken steps
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err
    stopped = json.loads((out / "last" / "metrics.json").read_text())["step"]
    assert stopped >= 1
    targets_before = (out / "annotations" / "a.targets.tif").stat().st_mtime_ns
    # --resume reuses the annotations and goes on from last/ (a spent budget ends it after one more step)
    assert run(_adapt(imgs, out, "--steps", "5000", "--minutes", "0.001", "--resume")) == 0
    assert (out / "annotations" / "a.targets.tif").stat().st_mtime_ns == targets_before
    assert json.loads((out / "adapt.json").read_text())["train"]["step"] == stopped + 1
    assert (out / "report" / "index.html").is_file()


def test_adapt_bad_inputs(crops, tmp_path, capsys):
    good = crops[0]
    blank = good.copy()
    blank[1] = 0  # no cytoplasm signal
    no_nuclei = good.copy()
    no_nuclei[0] = 100
    no_nuclei[0, 5, 5] = 4000  # one hot pixel: nothing nucleus-sized
    smaller = crops[1][:, :200, :240]  # another size is fine
    one_channel = good[:1]
    imgs = _write(
        tmp_path / "imgs", {"good": good, "blank": blank, "nonuc": no_nuclei, "small": smaller, "single": one_channel}
    )
    out = tmp_path / "adapted"
    assert run(_adapt(imgs, out, "--steps", "1", "--minutes", "1")) == 1  # done, but bad images reported
    err = capsys.readouterr().err
    assert "blank: skipped: the cytoplasm channel is blank" in err
    assert "nonuc: skipped: no nuclei found" in err
    assert "single: skipped" in err
    info = json.loads((out / "adapt.json").read_text())
    assert info["images"] == ["good", "small"]
    assert read_labels(out / "segmentation" / "small.tif").shape == (200, 240)
    # nothing usable at all: one error line, status 2
    only_bad = _write(tmp_path / "bad", {"blank": blank})
    assert run(_adapt(only_bad, tmp_path / "none", "--steps", "1")) == 2
    assert "no usable image" in capsys.readouterr().err
    assert run(_adapt(imgs, tmp_path / "x", "--minutes", "0")) == 2
    assert run(_adapt(imgs, tmp_path / "y", "--from", "no-such-model")) == 2

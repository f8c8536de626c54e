"""Run control of the training loop: kill-safe checkpoints, exact resume, signals, the time budget,
validation and best/ selection, in-memory samples and the ``lociseg train`` CLI.

Everything trains the tiny LACSS on small synthetic images (disks) with one torch thread, so a
run is deterministic and takes seconds.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lociseg.errors import InputError
from lociseg.train.config import ExperimentConfig
from lociseg.train.loop import train

ROOT = Path(__file__).resolve().parents[3]  # the checkout whose lociseg the subprocesses import
STEPS = 20


def _config(data: Path | None = None, steps: int = STEPS, **optim) -> ExperimentConfig:
    over = {
        "lacss.backbone.preset": "tiny",
        "data.train": [str(data)] if data else [],
        "data.val": [],
        "data.channels": ["0", "1"],
        "data.crop_size": 64,
        "optim.steps": steps,
        "optim.warmup_steps": 3,
        "optim.batch_size": 1,
        "optim.log_every": 1,
        "optim.threads": 1,  # multi-threaded kernels may sum in another order from run to run
        "optim.checkpoint_every": 5,
        **{f"optim.{k}": v for k, v in optim.items()},
    }
    return ExperimentConfig().override(over)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-7, msg=k)


def _log_steps(run: Path) -> list[int]:
    with open(run / "log.csv", newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def _state_step(run: Path) -> int:
    return json.loads((run / "last" / "train_state.json").read_text())["step"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, disk_scenes, write_scene_folder) -> Path:
    return write_scene_folder(tmp_path_factory.mktemp("disks"), *disk_scenes(n=3))


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> Path:
    """A run of all STEPS steps without interruption (in this process)."""
    out = tmp_path_factory.mktemp("full") / "run"
    train(_config(data_dir), out, device="cpu", progress=False)
    return out


def _start(config: ExperimentConfig, out: Path, *extra: str) -> subprocess.Popen:
    """``python -m lociseg train`` in a subprocess, importing this checkout."""
    out.mkdir(parents=True, exist_ok=True)
    config.to_yaml(out.parent / f"{out.name}.yaml")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "lociseg",
        "train",
        "-c",
        str(out.parent / f"{out.name}.yaml"),
        "-o",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not (out / "last" / "model.safetensors").is_file():
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint:\n{proc.stdout.read()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("no checkpoint in time")
        time.sleep(0.05)


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    """Wait until the run has logged ``step`` (one log row per step)."""
    t0 = time.monotonic()
    log = out / "log.csv"
    while not log.is_file() or len(log.read_text().splitlines()) - 1 < step:
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"training did not reach step {step}:\n{proc.stdout.read()}")
        time.sleep(0.01)


def _resume(config: ExperimentConfig, out: Path) -> None:
    proc = _start(config, out, "--resume")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert f"done: {STEPS} steps" in output


def test_kill_9_then_resume_equals_uninterrupted(data_dir, uninterrupted, tmp_path):
    out = tmp_path / "run"
    cfg = _config(data_dir)
    proc = _start(cfg, out)
    _wait_for_checkpoint(proc, out)
    _wait_for_step(proc, out, random.randint(6, STEPS - 6))  # some step after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill; raise STEPS"
    saved = _state_step(out)
    assert saved % 5 == 0 and 5 <= saved < STEPS

    _resume(cfg, out)
    _same_weights(out, uninterrupted)
    assert _log_steps(out) == list(range(1, STEPS + 1))  # rows after the checkpoint were cut, not repeated


def test_sigterm_saves_and_stops_cleanly(data_dir, uninterrupted, tmp_path):
    out = tmp_path / "run"
    cfg = _config(data_dir)
    proc = _start(cfg, out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output and "--resume" in output
    stopped = _state_step(out)
    assert 5 <= stopped < STEPS and f"at step {stopped}" in output
    assert _log_steps(out) == list(range(1, stopped + 1))

    _resume(cfg, out)
    _same_weights(out, uninterrupted)
    assert _log_steps(out) == list(range(1, STEPS + 1))


def test_run_folder_without_checkpoint_is_refused_with_a_way_out(data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.csv").write_text("step,loss\n1,0.5\n")  # a run killed before its first checkpoint
    cfg = _config(data_dir, steps=2)
    for resume in (True, False):
        with pytest.raises(InputError, match="before its first checkpoint.*--overwrite.*another -o"):
            train(cfg, out, device="cpu", progress=False, resume=resume)
    train(cfg, out, device="cpu", progress=False, overwrite=True)
    assert _state_step(out) == 2


def test_interrupted_checkpoint_swap_is_recovered(data_dir, tmp_path):
    """A kill between the two renames of a checkpoint swap leaves last/ as .last.old; resume finds it."""
    out = tmp_path / "run"
    cfg = _config(data_dir, steps=4)
    train(cfg, out, device="cpu", progress=False, stop_at=2)
    os.replace(out / "last", out / ".last.old")
    result = train(cfg, out, device="cpu", progress=False, resume=True)
    assert result["step"] == 4 and _log_steps(out) == [1, 2, 3, 4]


def test_in_memory_samples_train_as_the_same_data_on_disk(data_dir, tmp_path, disk_scenes):
    images, labels = disk_scenes(n=3)
    cfg = _config(data_dir, steps=3)
    train(cfg, tmp_path / "disk", device="cpu", progress=False)
    train(cfg, tmp_path / "memory", device="cpu", progress=False, train_samples=(images, labels))
    _same_weights(tmp_path / "disk", tmp_path / "memory")
    saved = ExperimentConfig.from_yaml(tmp_path / "memory" / "config.yaml")
    assert saved.data.train == []  # the run did not read the specs


def test_in_memory_weak_samples_need_points_or_from_labels(tmp_path, disk_scenes):
    from lociseg.errors import ConfigError

    images, labels = disk_scenes(n=2)
    cfg = _config(steps=2).override({"lacss.mode": "weak"})
    with pytest.raises(ConfigError, match="from-labels"):
        train(cfg, tmp_path / "a", device="cpu", progress=False, train_samples=(images, labels))
    out = train(
        cfg.override({"data.annotations": ["from-labels"]}),
        tmp_path / "b",
        device="cpu",
        progress=False,
        train_samples=(images, labels),
    )
    assert out["step"] == 2
    header = (tmp_path / "b" / "log.csv").read_text().splitlines()[0]
    assert "diag_area_ratio" in header  # the model's diagnostics hook is logged


@pytest.mark.parametrize("select_best", [True, False])
def test_validation_and_best_selection(tmp_path, select_best, disk_scenes):
    images, labels = disk_scenes(n=2)
    val = disk_scenes(n=1, seed=1)
    cfg = _config(steps=4, val_every=1, select_best=select_best, lr=0.01)
    out = tmp_path / "run"
    result = train(cfg, out, device="cpu", progress=False, train_samples=(images, labels), val_samples=val)
    with open(out / "log.csv", newline="") as fh:
        f1 = [float(r["val_f1_50"]) for r in csv.DictReader(fh)]
    assert len(f1) == 4
    best = json.loads((out / "best" / "metrics.json").read_text())
    want = int(np.argmax(f1)) + 1 if select_best else 4  # first best step; without selection the last
    assert best["step"] == want and best["f1_50"] == pytest.approx(f1[want - 1])
    assert result["best"]["step"] == want


def test_time_budget_stops_and_saves(tmp_path, caplog, disk_scenes):
    images, labels = disk_scenes(n=2)
    cfg = _config(steps=10_000, budget_minutes=0.05)  # 3 s
    out = tmp_path / "run"
    t0 = time.perf_counter()
    with caplog.at_level("INFO", logger="lociseg"):
        result = train(cfg, out, device="cpu", progress=False, train_samples=(images, labels))
    # the budget is how the run was asked to end (adapt's normal end): information, not a warning
    ends = [r for r in caplog.records if "budget" in r.getMessage()]
    assert ends and all(r.levelname == "INFO" for r in ends)
    assert time.perf_counter() - t0 < 60
    assert 0 < result["step"] < 10_000
    assert _state_step(out) == result["step"] and (out / "best").is_dir()
    assert _log_steps(out)[-1] == result["step"]


def test_cli_set_and_resume(data_dir, tmp_path):
    from lociseg.cli.main import run

    cfg_file = tmp_path / "c.yaml"
    _config(data_dir, steps=50).to_yaml(cfg_file)
    out = tmp_path / "run"
    assert run(["train", "-c", str(cfg_file), "-o", str(out), "--device", "cpu", "--set", "optim.steps=2"]) == 0
    assert ExperimentConfig.from_yaml(out / "config.yaml").optim.steps == 2
    assert _state_step(out) == 2
    assert run(["train", "-c", str(cfg_file), "-o", str(out), "--device", "cpu", "--set", "optim.steps=2"]) == 2
    # --resume reads OUT/config.yaml; --set extends the run
    assert run(["train", "-o", str(out), "--device", "cpu", "--resume", "--set", "optim.steps=4"]) == 0
    assert _state_step(out) == 4 and _log_steps(out) == [1, 2, 3, 4]


def test_one_run_folder_check_for_every_kind_of_run(tmp_path):
    from lociseg.train.run_control import held_run, refuse_held_run

    assert refuse_held_run(tmp_path, "a run already", resume=False, overwrite=False, records=("adapt.json",)) == []
    (tmp_path / "adapt.json").write_text("{}")
    assert held_run(tmp_path) == [] and held_run(tmp_path, "adapt.json") == [tmp_path / "adapt.json"]
    with pytest.raises(InputError, match="holds an adapt run already; use --resume to continue it"):
        refuse_held_run(tmp_path, "an adapt run already", resume=False, overwrite=False, records=("adapt.json",))
    (tmp_path / "log.csv").write_text("step\n")
    with pytest.raises(InputError, match="already; use --overwrite to start again, or another -o"):
        refuse_held_run(tmp_path, "a fine-tuning run already", resume=False, overwrite=False, resumable=False)
    for resume, overwrite in ((True, False), (False, True)):
        assert refuse_held_run(tmp_path, "x", resume=resume, overwrite=overwrite) == [tmp_path / "log.csv"]

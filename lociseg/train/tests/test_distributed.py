"""Two-process DistributedDataParallel training on CPU (gloo) against one process with the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from lociseg.train.config import ExperimentConfig
from lociseg.train.data import batch_arrays
from lociseg.train.loop import train

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Two-channel images of bright disks with their labels (images/ + masks/)."""
    folder = tmp_path_factory.mktemp("disks")
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    for k in range(3):
        lab = np.zeros((96, 96), np.int32)
        for i in range(1, 9):
            cy, cx = rng.integers(10, 86, 2)
            lab[((yy - cy) ** 2 + (xx - cx) ** 2 < 49) & (lab == 0)] = i
        fg = lab > 0
        img = np.stack([1000 + 3000 * fg, 500 + 2000 * fg]) + rng.normal(0, 100, (2, 96, 96))
        tifffile.imwrite(
            folder / "images" / f"im{k}.tif", img.clip(0, 65535).astype(np.uint16), metadata={"axes": "CYX"}
        )
        tifffile.imwrite(folder / "masks" / f"im{k}.tif", lab)
    return folder


def _config(data: Path, steps: int, **over) -> ExperimentConfig:
    return ExperimentConfig().override(
        {
            "lacss.backbone.preset": "tiny",
            **over,
            "data.train": [str(data)],
            "data.val": [],
            "data.channels": ["0", "1"],
            "data.crop_size": 64,
            "optim.steps": steps,
            "optim.warmup_steps": 2,
            "optim.batch_size": 4,
            "optim.log_every": 1,
            "optim.threads": 1,
            "optim.checkpoint_every": 2,
        }
    )


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def _train_2(cfg_file: Path, out: Path, *extra: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    opts = ["-c", str(cfg_file), "-o", str(out), "--device", "cpu", "--nproc", "2"]
    cmd = [sys.executable, "-m", "lociseg", "train", *opts, *extra]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def test_shards_of_all_ranks_are_the_one_process_batch(data_dir):
    from lociseg.data import load_dataset
    from lociseg.train.data import prepare

    cfg = _config(data_dir, 1)
    items, _ = prepare(list(load_dataset(str(data_dir))), cfg, weak=False)
    whole = batch_arrays(items, cfg, 5, weak=False)
    parts = [batch_arrays(items, cfg, 5, weak=False, shard=(r, 2)) for r in range(2)]
    assert len(parts[0]["image"]) == len(parts[1]["image"]) == 2
    for b in range(4):
        torch.testing.assert_close(parts[b % 2]["image"][b // 2], whole["image"][b])


#: A U-Net whose loss is a plain mean over equally many pixels per sample (no batch norm, equal class
#: weights), so the mean of the two shards' losses is the loss of the whole batch.
UNET = {
    "model_type": "unet",
    "unet.base_channels": 8,
    "unet.depth": 2,
    "unet.batch_norm": False,
    "unet.class_weights": [1.0, 1.0, 1.0],
    "data.augment.flips": False,
}


def test_two_processes_match_one_with_the_same_global_batch_and_resume(data_dir, tmp_path):
    from lociseg.models.checkpoint import load_checkpoint

    steps = 4
    one = tmp_path / "one"
    train(_config(data_dir, steps, **UNET), one, device="cpu", progress=False)
    cfg_file = tmp_path / "c.yaml"
    _config(data_dir, steps - 2, **UNET).to_yaml(cfg_file)
    two = tmp_path / "two"
    _train_2(cfg_file, two)
    # resumed on two processes from rank 0's checkpoint: the schedule of a 4-step run
    _train_2(cfg_file, two, "--resume", "--set", f"optim.steps={steps}")
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == steps
    np.testing.assert_allclose(b, a, rtol=1e-5)
    # one writer: a single checkpoint, loadable in any process, with about the same weights
    ma, mb = load_checkpoint(one / "last", "cpu"), load_checkpoint(two / "last", "cpu")
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        torch.testing.assert_close(vb, va, rtol=1e-4, atol=1e-6, msg=k)


def test_lacss_on_two_processes(data_dir, tmp_path):
    """LACSS normalises its LPN and mask losses over the batch: two shards' mean is close, not equal."""
    one = tmp_path / "one"
    train(_config(data_dir, 1), one, device="cpu", progress=False)
    cfg_file = tmp_path / "c.yaml"
    _config(data_dir, 1).to_yaml(cfg_file)
    _train_2(cfg_file, tmp_path / "two")
    np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(one), rtol=2e-3)

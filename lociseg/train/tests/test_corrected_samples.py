"""Samples with a person's corrected cells through the training data and the loop."""

import numpy as np
import torch

from lociseg.data import Sample
from lociseg.train.config import ExperimentConfig
from lociseg.train.data import Prepared, batch_arrays, sample_crop
from lociseg.train.loop import train


def _item(rng, corrected=True) -> Prepared:
    cells = np.zeros((100, 90), np.int32)
    cells[10:40, 10:40], cells[10:40, 40:70] = 1, 2
    pts = np.array([[25.0, 25.0], [25.0, 55.0]], np.float32)
    fixed = np.zeros_like(cells)
    fixed[10:40, 40:55], fixed[10:40, 55:70] = 5, 6  # cell 2 split in two
    return Prepared(
        "x",
        rng.random((2, 100, 90)).astype(np.float32),
        None,
        pts,
        (cells > 0).astype(np.float32),
        1.0,
        corrected=fixed if corrected else None,
        reviewed=(fixed > 0).astype(np.uint8) if corrected else None,
    )


def test_crops_move_the_corrections_with_the_pixels(rng):
    cfg = ExperimentConfig()
    item = _item(rng)
    for s in range(10):
        c = sample_crop(item, 64, cfg.data.augment, np.random.default_rng([3, s, 0]), weak=True)
        assert c["corrected"].shape == c["reviewed"].shape == (64, 64)
        assert np.array_equal(c["reviewed"] > 0, c["corrected"] > 0)  # moved together
        assert set(np.unique(c["corrected"])) <= {0, 5, 6}
        assert np.all(c["foreground"][c["corrected"] > 0] == 1)  # and with the foreground


def test_a_batch_mixing_corrected_and_plain_images_has_blank_corrections_for_the_plain_ones(rng):
    cfg = ExperimentConfig().override({"data.crop_size": 64, "optim.batch_size": 4})
    items = [_item(rng), _item(rng, corrected=False)]
    batch = batch_arrays(items, cfg, 0, weak=True)
    assert batch["corrected"].shape == (4, 64, 64) and batch["reviewed"].dtype == torch.float32
    plain = batch_arrays([items[1]], cfg, 0, weak=True)
    assert "corrected" not in plain and "reviewed" not in plain
    assert "corrected" not in batch_arrays([items[0]], cfg, 0, weak=False)  # supervised runs ignore them


def test_weak_training_reads_the_corrected_cells(tmp_path, rng):
    image = rng.random((2, 96, 96)).astype(np.float32)
    cells = np.zeros((96, 96), np.int32)
    for k, (y, x) in enumerate([(10, 10), (10, 50), (50, 10), (50, 50)], 1):
        cells[y : y + 30, x : x + 30] = k
        image[:, y + 5 : y + 25, x + 5 : x + 25] += 1.0
    fixed = np.where(cells == 4, 4, 0).astype(np.int32)
    pts = np.array([[25.0, 25.0], [25.0, 65.0], [65.0, 25.0], [65.0, 65.0]], np.float32)
    sample = Sample(image, points=pts, foreground=cells > 0, corrected=fixed, name="a")
    cfg = ExperimentConfig().override(
        {
            "lacss.mode": "weak",
            "lacss.weak.warmup_steps": 1,
            "data.crop_size": 96,
            "data.diameter": 32.0,
            "data.augment.scale_min": 1.0,
            "data.augment.scale_max": 1.0,
            "optim.steps": 2,
            "optim.batch_size": 1,
            "optim.log_every": 1,
            "optim.threads": 1,
        }
    )
    train(cfg, tmp_path / "run", train_samples=[sample], device="cpu", progress=False)
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"mask_bce", "mask_dice", "weak"} <= set(header)

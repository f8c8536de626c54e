"""Weak-training diagnostics on constructed healthy, empty and runaway masks."""

import logging

import numpy as np
import pytest
import torch

from lociseg.losses.diagnostics import weak_diagnostics
from lociseg.train.diagnostics import CollapseMonitor

# 4 cells on a 10 px grid in a 20x20 image, windows 10x10 centred on them
POINTS = np.array([[5, 5], [5, 15], [15, 5], [15, 15]], np.float32)
ORIGINS = torch.tensor([[0, 0], [0, 10], [10, 0], [10, 10]])
FG = torch.ones(20, 20)


def _probs(value_inside, size=10, inner=slice(2, 8)):
    m = torch.zeros(4, size, size)
    m[:, inner, inner] = value_inside
    return m


def test_healthy_masks_by_hand():
    d = weak_diagnostics(_probs(1.0), ORIGINS, POINTS, FG, from_logits=False)
    assert d["spacing2"] == pytest.approx(100.0)
    assert d["mean_area"] == pytest.approx(36.0) and d["area_ratio"] == pytest.approx(0.36)
    assert d["coverage"] == pytest.approx(4 * 36 / 400)
    assert d["overlap"] == 0.0 and d["empty_fraction"] == 0.0


def test_overlap_fraction_by_hand():
    m = torch.ones(2, 4, 4)
    d = weak_diagnostics(
        m, torch.tensor([[0, 0], [0, 2]]), np.array([[2, 2], [2, 4]]), torch.ones(6, 8), from_logits=False
    )
    # union 4x6 = 24 px, doubly covered 4x2 = 8 px
    assert d["overlap"] == pytest.approx(8 / 24)
    assert d["coverage"] == pytest.approx(24 / 48)


def test_monitor_flags_empty_masks_after_patience(caplog):
    empty = weak_diagnostics(torch.full((4, 10, 10), -20.0), ORIGINS, POINTS, FG)
    assert empty["empty_fraction"] == 1.0
    mon = CollapseMonitor(patience=2)
    assert mon.update(empty, step=1) is None
    with caplog.at_level(logging.WARNING, logger="lociseg.train"):
        msg = mon.update(empty, step=2)
    assert msg is not None and "empty" in msg and mon.collapsed
    assert "empty" in caplog.text


def test_area_counts_only_pixels_inside_the_image():
    """A collapsed mask at the crop's edge: its out-of-image half never trains and stays at ~0.5."""
    logits = torch.full((1, 10, 10), -20.0)
    logits[:, :, :5] = 0.0  # x < 0: outside the 20x20 image
    d = weak_diagnostics(logits, torch.tensor([[5, -5]]), POINTS[:1], FG)
    assert d["mean_area"] == pytest.approx(0.0, abs=1e-6) and d["empty_fraction"] == 1.0


def test_monitor_flags_huge_masks_and_resets():
    big = weak_diagnostics(torch.full((4, 40, 40), 20.0), ORIGINS - 15, POINTS, torch.ones(40, 40))
    assert big["area_ratio"] > 3
    ok = weak_diagnostics(_probs(1.0), ORIGINS, POINTS, FG, from_logits=False)
    mon = CollapseMonitor(patience=1)
    assert "bigger than cells" in mon.update(big, step=10)
    assert mon.update(ok, step=11) is None and not mon.collapsed
    assert (
        weak_diagnostics(torch.zeros(0, 4, 4), torch.zeros(0, 2, dtype=torch.long), POINTS, FG)["empty_fraction"] == 1.0
    )


def test_monitor_flags_uncovered_foreground_once_per_window(caplog):
    """Masks piled onto a few cells: sizes look normal, but most of the foreground stays uncovered."""
    mon = CollapseMonitor(coverage_window=3, coverage_from=100)
    low = {"empty_fraction": 0.0, "area_ratio": 1.5, "coverage": 0.3}
    assert all(mon.update(low, step=s) is None for s in (10, 20, 30, 40))  # before coverage_from: not judged
    assert mon.update(low, step=100) is None and mon.update(dict(low, coverage=0.9), step=110) is None
    with caplog.at_level(logging.WARNING, logger="lociseg.train"):
        msg = mon.update(low, step=120)  # mean of 0.3, 0.9, 0.3 = 0.5: fine
        assert msg is None
        msgs = [mon.update(low, step=s) for s in (130, 140, 150)]
    assert msgs[:2] == [None, None] and "cover only 30%" in msgs[2] and "territory" in msgs[2]
    assert "cover only" in caplog.text
    no_fg = {"empty_fraction": 0.0, "area_ratio": 1.5, "coverage": float("nan")}
    assert all(mon.update(no_fg, step=s) is None for s in range(200, 300, 10))  # points mode: no foreground


def test_a_lasting_collapse_is_warned_once_then_every_repeat_every_updates():
    mon = CollapseMonitor(patience=2, repeat_every=5)
    empty = {"empty_fraction": 1.0, "area_ratio": 0.0, "coverage": 0.0}
    warned = [s for s in range(1, 13) if mon.update(empty, step=s) is not None]
    assert warned == [2, 7, 12] and mon.collapsed
    assert mon.update({"empty_fraction": 0.0, "area_ratio": 1.0}, step=13) is None and not mon.collapsed

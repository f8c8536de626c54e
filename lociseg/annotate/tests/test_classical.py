"""The classical baseline on synthetic images: touching nuclei and cells must come apart."""

from __future__ import annotations

import numpy as np

from lociseg.annotate import classical_cells, classical_nuclei, classical_phase_cells, split_touching
from lociseg.metrics import evaluate


def _discs(shape, centres, radius) -> np.ndarray:
    """Label image of discs (later discs win where they overlap)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, 1):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return out


def _scene():
    """Two-channel field: 3 pairs of touching cells (r 22) and 2 single cells, a nucleus (r 9) in each."""
    shape = (240, 320)
    centres = [(50, 50), (50, 90), (130, 60), (170, 85), (60, 200), (95, 225), (190, 200), (180, 280)]
    cells = _discs(shape, centres, 22)
    nuclei = _discs(shape, centres, 9)
    rng = np.random.default_rng(0)
    cyto = np.where(cells > 0, 0.6, 0.05) + rng.normal(0, 0.03, shape)
    dna = np.where(nuclei > 0, 0.9, 0.05) + rng.normal(0, 0.03, shape)
    return dna.astype(np.float32), cyto.astype(np.float32), cells, nuclei


def test_touching_nuclei_are_split():
    shape = (200, 260)
    # Pairs of overlapping nuclei (r 12, centres 20 px apart: a neck of 13 px), and singles.
    centres = [(50, 50), (50, 70), (140, 60), (160, 72), (60, 180), (150, 200)]
    gt = _discs(shape, centres, 12)
    rng = np.random.default_rng(1)
    img = np.where(gt > 0, 200.0, 20.0) + rng.normal(0, 5, shape)
    labels, d = classical_nuclei(img.astype(np.uint16))
    assert 18 < d < 40  # the scale is read off the image (pairs and singles)
    assert labels.max() == len(centres)
    assert evaluate(gt, labels).overall["sum"]["f1_50"] == 1.0
    # Dark nuclei on a bright field (brightfield-like) are found the same way.
    dark, _ = classical_nuclei((255 - img.clip(0, 255)).astype(np.uint8))
    assert dark.max() == len(centres)


def test_split_touching_needs_a_neck():
    one = _discs((80, 80), [(40, 40)], 15) > 0
    assert split_touching(one, 30).max() == 1  # a single disc is never cut
    two = _discs((80, 120), [(40, 40), (40, 68)], 15) > 0
    assert split_touching(two, 30).max() == 2


def test_cells_grow_from_nuclei_and_separate():
    dna, cyto, cells, nuclei = _scene()
    pred_cells, pred_nuclei = classical_cells(dna, cyto)
    assert pred_nuclei.max() == nuclei.max()
    assert abs(int(pred_cells.max()) - int(cells.max())) <= 1
    rep = evaluate(cells, pred_cells).overall["sum"]
    assert rep["f1_50"] >= 0.85
    # Each touching pair is two cells: the cell of each nucleus holds that nucleus.
    for k in range(1, int(pred_nuclei.max()) + 1):
        assert (pred_cells[pred_nuclei == k] == k).all()


def test_phase_cells_from_texture():
    shape = (200, 260)
    centres = [(60, 60), (60, 190), (150, 120)]
    gt = _discs(shape, centres, 30)
    rng = np.random.default_rng(2)
    img = 0.5 + np.where(gt > 0, rng.normal(0, 0.2, shape), rng.normal(0, 0.01, shape))
    pred = classical_phase_cells(img.astype(np.float32))
    assert pred.max() == len(centres)
    assert evaluate(gt, pred).overall["sum"]["f1_50"] == 1.0

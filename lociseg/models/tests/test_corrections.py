"""Weak training with a person's corrected cells: those cells are full labels, the rest stays weak."""

import numpy as np
import pytest
import torch

from lociseg.losses.mask import mask_bce_dice
from lociseg.models import LacssConfig, LacssModel
from lociseg.models.targets import label_centroids, window_targets


def _weak_batch() -> dict:
    """Two touching machine cells (1, 2) and one far away (3); points at their centres."""
    g = torch.Generator().manual_seed(1)
    cells = torch.zeros(1, 64, 64, dtype=torch.long)
    cells[0, 8:24, 8:24], cells[0, 8:24, 24:40], cells[0, 40:56, 40:56] = 1, 2, 3
    return {
        "image": torch.randn(1, 2, 64, 64, generator=g),
        "valid": torch.ones(1, 64, 64),
        "points": [label_centroids(cells[0])[1]],
        "foreground": (cells > 0).float(),
    }


def _corrected(batch: dict) -> dict:
    """The person split machine cell 1 into two (ids 7, 9) and erased cell 3."""
    corrected = torch.zeros(1, 64, 64, dtype=torch.long)
    corrected[0, 8:16, 8:24], corrected[0, 16:24, 8:24] = 7, 9
    reviewed = (corrected > 0).float()
    reviewed[0, 40:56, 40:56] = 1  # erased: reviewed background
    return {**batch, "corrected": corrected, "reviewed": reviewed}


def _model(mode: str = "weak") -> LacssModel:
    torch.manual_seed(0)
    return LacssModel(LacssConfig().override({"mode": mode, "weak.warmup_steps": 1, "match_start": 10_000}))


def test_points_in_reviewed_pixels_give_way_to_the_corrected_cells():
    model, batch = _model(), _corrected(_weak_batch())
    with torch.no_grad():
        score, offsets, _ = model(batch["image"])
    t = model.build_targets(batch, score, offsets, 0, supervised=False)
    # machine cells 1 and 3 lie in reviewed pixels: only cell 2's point stays, then the corrected cells
    assert t.ids[0].tolist() == [0, 7, 9]
    torch.testing.assert_close(t.points[0], torch.tensor([[15.5, 31.5], [11.5, 15.5], [19.5, 15.5]]))
    # and the LPN now asks for the two corrected cells, not for machine cell 1 or the erased cell 3
    plain = model.build_targets(_weak_batch(), score, offsets, 0, supervised=False)
    assert plain.ids[0] is None and len(plain.points[0]) == 3
    assert not torch.equal(t.positive, plain.positive)


def test_corrected_cells_contribute_the_supervised_mask_terms():
    model, batch = _model(), _corrected(_weak_batch())
    total, logs = model.training_loss(batch, 5)
    _, plain_logs = model.training_loss(_weak_batch(), 5)
    assert "mask_bce" not in plain_logs and "weak" in plain_logs
    assert "mask_bce" in logs and "mask_dice" in logs and "weak" in logs
    # the supervised terms are those of the corrected cells' masks at their centroids, nothing else
    with torch.no_grad():
        _, _, dense = model(batch["image"])
        ids, centres = label_centroids(batch["corrected"][0])
        logits, origins = model.seghead(dense[0], centres)
        target, win_valid = window_targets(batch["corrected"][0], ids, origins, logits.shape[-1], batch["valid"][0])
        want = mask_bce_dice(logits, target, win_valid)
    assert logs["mask_bce"] == pytest.approx(float(want["mask_bce"]), rel=1e-5)
    assert logs["mask_dice"] == pytest.approx(float(want["mask_dice"]), rel=1e-5)
    # one weak instance left (cell 2); the corrected ones are not in the weak loss
    assert logs["instances"] == 3
    assert total.requires_grad


def test_weak_instances_see_the_reviewed_pixels_as_background():
    """In weak mode the foreground of the weak loss is 0 on reviewed pixels (the corrected cells own them)."""
    model = _model()
    batch = _weak_batch()
    corrected = {**batch, "corrected": torch.zeros(1, 64, 64, dtype=torch.long), "reviewed": torch.zeros(1, 64, 64)}
    # nothing reviewed: the same loss as without corrections
    a, _ = model.training_loss(batch, 5)
    b, _ = model.training_loss(corrected, 5)
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)
    # cell 2's pixels reviewed as background: its point goes and the weak loss changes
    corrected["reviewed"][0, 8:24, 24:40] = 1
    c, logs = model.training_loss(corrected, 5)
    assert logs["instances"] == 2 and float(c.detach()) != pytest.approx(float(a.detach()), rel=1e-4)


def test_points_mode_also_takes_corrected_cells_as_full_labels():
    model = _model("points")
    batch = _corrected(_weak_batch())
    del batch["foreground"]
    _, logs = model.training_loss(batch, 5)
    assert "mask_bce" in logs and "weak" in logs and np.isfinite(logs["mask_bce"])

import json
from pathlib import Path

import pytest
import torch

from lociseg.models import LacssConfig, LacssModel
from lociseg.models.lacss import STRIDE
from lociseg.models.lpn import decode_locations
from lociseg.models.targets import (
    label_centroids,
    match_locations,
    subsample_instances,
)

#: Losses of the pre-refactor ``LacssModel.training_loss`` (commit e3aac17) on the batches below.
REFERENCE = json.loads((Path(__file__).parent / "data" / "lacss_loss_reference.json").read_text())

CASES = {
    "supervised": ({}, False),
    "supervised_nodice": ({"loss.mask_dice": 0.0}, False),
    # the reference predates the mask head's location prior (issue 33), which changes the masks
    "weak": ({"mode": "weak", "seghead.location_prior": False}, True),
    "weak_aux": ({"mode": "weak+aux", "seghead.location_prior": False}, True),
    "points": ({"mode": "points", "weak.collaborator": True, "weak.territory_weight": 0.5}, True),
}


def _batch(weak: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(2, 2, 64, 64, generator=g)
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    k = 1
    for b in range(2):
        for y in range(4, 60, 12):
            for x in range(4, 60, 12):
                if (y + x + b) % 3:  # always for the first image, never for the second (no cells)
                    labels[b, y : y + 9, x : x + 10] = k
                    k += 1
    valid = torch.ones(2, 64, 64)
    valid[1, :, 56:] = 0
    out = {"image": image, "valid": valid}
    if not weak:
        out["labels"] = labels
        return out
    out["points"] = [label_centroids(labels[b])[1] for b in range(2)]
    out["foreground"] = (labels > 0).float()
    out["cells"] = labels.clone()
    return out


def _model(over: dict, max_instances: int) -> LacssModel:
    torch.manual_seed(0)
    # Matching on an untrained LPN: every grid peak is a candidate, any distance counts.
    cfg = LacssConfig().override(
        {**over, "max_instances": max_instances, "match_distance": 40.0, "lpn.min_score": 0.0, "lpn.min_distance": 0.0}
    )
    return LacssModel(cfg)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("step", [0, 700, 2000])
@pytest.mark.parametrize("max_instances", [256, 5])
def test_training_loss_equals_the_pre_refactor_loss(name, step, max_instances):
    over, weak = CASES[name]
    total, logs = _model(over, max_instances).training_loss(_batch(weak), step)
    ref = REFERENCE[f"{name}/step{step}/max{max_instances}"]
    got = {"total": float(total.detach()), **logs}
    assert set(got) == set(ref)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def _lpn_outputs(model: LacssModel, batch: dict):
    with torch.no_grad():
        score, offsets, _ = model(batch["image"])
    return score, offsets


def _targets(model: LacssModel, batch: dict, step: int, *, supervised: bool = True):
    score, offsets = _lpn_outputs(model, batch)
    return model.build_targets(batch, score, offsets, step, supervised=supervised)


def test_match_start_switches_from_annotated_to_nearest_predicted_locations():
    model = _model({"match_start": 100}, 256)
    batch = _batch(False)
    before = _targets(model, batch, 99)
    after = _targets(model, batch, 100)
    ids, centroids = label_centroids(batch["labels"][0])
    assert len(ids) == 25 and torch.equal(before.ids[0], ids)
    assert torch.equal(before.locations[0], centroids)  # annotated locations
    score, offsets = _lpn_outputs(model, batch)
    pred, _ = decode_locations(score[0], offsets[0], STRIDE, **model._decode_kwargs())
    nearest = pred[torch.cdist(centroids, pred).argmin(dim=1)]
    assert torch.equal(after.locations[0], nearest)  # match_distance 40 px: every one is replaced
    assert not torch.equal(after.locations[0], centroids)
    assert len(after.points[1]) == 0 and len(after.locations[1]) == 0  # the second image has no cells
    # the LPN targets stay on the annotations either way
    assert torch.equal(before.positive, after.positive) and torch.equal(before.offsets, after.offsets)


def test_match_locations_keeps_points_without_a_close_prediction():
    pts = torch.tensor([[10.0, 10.0], [50.0, 50.0]])
    pred = torch.tensor([[12.0, 10.0], [90.0, 90.0]])
    assert torch.equal(match_locations(pts, pred, 3.0), torch.tensor([[12.0, 10.0], [50.0, 50.0]]))
    assert torch.equal(match_locations(pts, pred[:0], 3.0), pts)


def test_max_instances_caps_the_count_deterministically():
    model = _model({}, 5)
    batch = _batch(False)
    a, b = _targets(model, batch, 7), _targets(model, batch, 7)
    other = _targets(model, batch, 8)
    for i in range(1):  # the second image has no cells
        n = len(a.points[i])
        assert n > 5 and len(a.selected[i]) == 5 and len(a.locations[i]) == 5
        assert len(set(a.selected[i].tolist())) == 5 and max(a.selected[i].tolist()) < n
        assert torch.equal(a.selected[i], b.selected[i])  # same step, same draw
        assert torch.equal(a.locations[i], a.points[i][a.selected[i]])
    assert not torch.equal(a.selected[0], other.selected[0])  # the step seeds the draw
    assert torch.equal(subsample_instances(4, 5, seed=3), torch.arange(4))  # under the cap: all, in order
    _, logs = model.training_loss(batch, 7)
    assert logs["instances"] == 5

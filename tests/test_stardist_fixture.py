"""lociseg's matching scores against StarDist's, stored once in ``fixtures/stardist_matching.json``.

The label pairs are regenerated here by the seeded generator that made the fixture
(``fixtures/make_stardist_fixture.py``, which documents how to rerun StarDist); StarDist itself is not
needed. ``lociseg/metrics/tests/test_matching.py`` also compares with StarDist live on real images, but
only where StarDist happens to be installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lociseg.metrics import aggregate, evaluate_image, match_instances

FIXTURES = Path(__file__).with_name("fixtures")


def _generator():
    spec = importlib.util.spec_from_file_location("make_stardist_fixture", FIXTURES / "make_stardist_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
REF = json.loads((FIXTURES / "stardist_matching.json").read_text())
PAIRS = GEN.label_pairs(REF["seeds"])


def _check(ours: dict, ref: dict, where) -> None:
    # counts must agree exactly; the scores to float32 precision (StarDist computes IoU in float32)
    assert (ours["tp"], ours["fp"], ours["fn"]) == (ref["tp"], ref["fp"], ref["fn"]), where
    for key in ("precision", "recall", "f1", "accuracy", "mean_true_score", "panoptic_quality"):
        assert ours[key] == pytest.approx(ref[key], rel=1e-6), (where, key)


def test_regenerated_pairs_are_the_stored_ones():
    assert [[GEN.checksum(g), GEN.checksum(p)] for g, p in PAIRS] == REF["checksums"]
    # the pairs are not trivial: every threshold has errors somewhere, and some matches survive 0.8
    tp = np.array([[r["tp"] for r in image] for image in REF["per_image"]])
    fp = np.array([[r["fp"] for r in image] for image in REF["per_image"]])
    assert (fp.sum(0) > 0).all() and (tp[:, 3] > 0).any() and (tp[:, 3] < tp[:, 0]).any()


@pytest.mark.parametrize("index", range(len(REF["seeds"])))
def test_per_image_matching_agrees_with_stardist(index):
    gt, pred = PAIRS[index]
    m = match_instances(gt, pred, thresholds=REF["thresholds"])
    for k, t in enumerate(REF["thresholds"]):
        ref = REF["per_image"][index][k]
        assert (m.n_gt, m.n_pred) == (ref["n_true"], ref["n_pred"])
        ours = {
            "tp": int(m.tp[k]),
            "fp": int(m.fp[k]),
            "fn": int(m.fn[k]),
            "precision": m.precision[k],
            "recall": m.recall[k],
            "f1": m.f1[k],
            "accuracy": m.dsb_ap[k],
            "mean_true_score": m.sum_iou[k] / m.n_gt,
            "panoptic_quality": m.pq[k],
        }
        _check(ours, ref, (index, t))
        if np.isclose(t, 0.5):
            assert m.mean_matched_iou == pytest.approx(ref["mean_matched_score"], rel=1e-6)


def test_pooled_scores_agree_with_stardist_matching_dataset():
    """``aggregate(by="sum")`` pools like ``matching_dataset(by_image=False)``: counts and IoU sums add up."""
    pooled = aggregate([evaluate_image(g, p, thresholds=REF["thresholds"]) for g, p in PAIRS], by="sum")
    per_t = pooled["per_threshold"]
    for k, t in enumerate(REF["thresholds"]):
        ref = REF["dataset"][k]
        assert (pooled["n_gt"], pooled["n_pred"]) == (ref["n_true"], ref["n_pred"])
        ours = {
            "tp": int(per_t["tp"][k]),
            "fp": int(per_t["fp"][k]),
            "fn": int(per_t["fn"][k]),
            "precision": per_t["precision"][k],
            "recall": per_t["recall"][k],
            "f1": per_t["f1"][k],
            "accuracy": per_t["dsb_ap"][k],
            "mean_true_score": per_t["sum_iou"][k] / pooled["n_gt"],
            "panoptic_quality": per_t["pq"][k],
        }
        _check(ours, ref, t)
    assert pooled["mean_matched_iou_50"] == pytest.approx(REF["dataset"][0]["mean_matched_score"], rel=1e-6)

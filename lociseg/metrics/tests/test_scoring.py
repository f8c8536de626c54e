"""evaluate_image keys, pooling by sum and mean, and the Report outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lociseg.metrics import SCALAR_KEYS, aggregate, evaluate_image, evaluate_pairs


def _pair():
    gt = np.zeros((10, 10), np.int32)
    gt[:4, :4], gt[6:, 6:] = 1, 5
    pred = np.zeros_like(gt)
    pred[:4, :2], pred[6:, 6:], pred[0, 9] = 3, 9, 2
    return gt, pred


def test_evaluate_image_keys_and_values():
    gt, pred = _pair()
    r = evaluate_image(gt, pred, {2: 0.95, 3: 0.9, 9: 0.8})
    assert set(SCALAR_KEYS) <= set(r)
    assert (r["n_gt"], r["n_pred"]) == (2, 3)
    assert r["f1_50"] == pytest.approx(0.8) and r["precision_50"] == pytest.approx(2 / 3)
    assert r["recall_50"] == 1 and r["dsb_ap_50"] == pytest.approx(2 / 3)
    # only the exact copy survives above 0.5: DSB AP 1/4 at nine thresholds
    assert r["dsb_map"] == pytest.approx((2 / 3 + 9 * 0.25) / 10)
    assert r["afnr"] == pytest.approx(0.45) and r["fnr_50"] == 0
    assert r["pq_50"] == pytest.approx(1.5 / 2.5) and r["mean_matched_iou_50"] == pytest.approx(0.75)
    assert r["fg_iou"] == pytest.approx(24 / 33)
    assert r["ap50"] == pytest.approx(2 / 3)
    assert len(r["per_threshold"]["f1"]) == 10


def test_aggregate_sum_and_mean():
    gt, pred = _pair()
    a = evaluate_image(gt, pred, {2: 0.95, 3: 0.9, 9: 0.8})
    b = evaluate_image(gt, gt, None)
    s = aggregate([a, b], by="sum")
    assert (s["n_gt"], s["n_pred"], s["n_images"]) == (4, 5, 2)
    assert s["f1_50"] == pytest.approx(2 * 4 / (4 + 5))  # from pooled TP/FP/FN
    assert s["afnr"] == pytest.approx(9 * 0.25 / 10)  # pooled TP 4 then 3 of 4 gt
    # pooled ranking: b's TPs (score 1) first, then a's FP 0.95, TP 0.9, TP 0.8
    # (P, R): (1, .5), (.67, .5), (.75, .75), (.8, 1): envelope 1 up to recall .5, then .8
    assert s["ap50"] == pytest.approx((51 * 1.0 + 50 * 0.8) / 101)
    m = aggregate([a, b], by="mean")
    assert m["f1_50"] == pytest.approx((0.8 + 1) / 2) and m["ap50"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["n_gt"] == 4
    with pytest.raises(ValueError):
        aggregate([a], by="median")


def test_report_outputs(tmp_path):
    gt, pred = _pair()
    rep = evaluate_pairs([gt, gt, gt], [pred, gt, pred], names=["a", "b", "c"], groups=["x", "y", "x"])
    assert set(rep.groups) == {"x", "y"} and rep.groups["x"]["n_gt"] == 4
    text = rep.table()
    assert "[x]" in text and "ALL (sum)" in text and "AP50" in text and "AFNR" in text
    assert "a" in rep.table().splitlines()[2] and "a " not in rep.table(images=False)
    rep.to_json(tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["overall"]["sum"]["n_pred"] == 8 and len(data["images"]) == 3
    assert "detections" not in data["images"][0]
    rep.to_csv(tmp_path / "m.csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [r["level"] for r in rows] == ["image"] * 3 + ["group"] * 2 + ["all (sum)", "all (mean)"]
    assert float(rows[1]["f1_50"]) == 1.0


def test_evaluate_pairs_rejects_mismatched_lists():
    gt, pred = _pair()
    with pytest.raises(ValueError, match="predictions"):
        evaluate_pairs([gt], [pred, pred])


def test_json_has_no_nan_without_the_05_threshold(tmp_path):
    gt, pred = _pair()
    rep = evaluate_pairs([gt], [pred], thresholds=[0.6, 0.7])
    assert np.isnan(rep.images[0]["f1_50"]) and rep.images[0]["ap50"] == pytest.approx(2 / 3)
    rep.to_json(tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and json.loads(text)["images"][0]["f1_50"] is None
    assert rep.table().splitlines()[2].split()[:3] == ["0", "-", "0.667"]  # F1@0.5 undefined, AP50 known


def test_top_level_evaluate_takes_one_pair_or_lists():
    import lociseg
    from lociseg.metrics import evaluate

    gt, pred = _pair()
    one = lociseg.evaluate(gt, pred, {2: 0.95, 3: 0.9, 9: 0.8})
    assert len(one.images) == 1 and one.overall["sum"]["ap50"] == pytest.approx(2 / 3)
    two = evaluate([gt, gt], [pred, gt], names=["p", "q"])
    assert [r["name"] for r in two.images] == ["p", "q"] and two.overall["sum"]["n_gt"] == 4


def test_partial_labels_ignore_predictions_on_unlabelled_objects():
    from lociseg.metrics import drop_unlabelled, evaluate

    gt = np.zeros((20, 20), np.int32)
    gt[0:5, 0:5] = 1  # the one labelled (marker-positive) cell
    pred = np.zeros_like(gt)
    pred[0:5, 0:5] = 4  # right
    pred[10:15, 10:15] = 7  # an unlabelled cell: not scored under partial labels
    pred[5:10, 0:5] = 2  # touches no labelled pixel either
    pred[14:20, 0:2] = 3
    pred[0:5, 6:9] = 5
    pred[4:5, 6:9] = 5
    assert set(np.unique(drop_unlabelled(gt, pred))) == {0, 4}
    full = evaluate(gt, pred).overall["sum"]
    part = evaluate(gt, pred, partial_labels=True).overall["sum"]
    assert full["n_pred"] == 5 and full["precision_50"] == 0.2
    assert part["n_pred"] == 1 and part["f1_50"] == 1.0
    # A prediction lying on the labelled cell still counts (and here, too small, fails to match).
    half = pred.copy()
    half[0:5, 0:5] = 0
    half[0:2, 0:5] = 9
    assert set(np.unique(drop_unlabelled(gt, half))) == {0, 9}
    assert evaluate(gt, half, partial_labels=True).overall["sum"]["f1_50"] == 0.0

"""Ranked AP (``ap50``, ``ap75``, ``map``) against ``pycocotools.cocoeval.COCOeval`` with ``iouType="segm"``.

The COCO evaluation is set up so that its definition and lociseg's coincide:

- IoU thresholds: lociseg's :data:`~lociseg.metrics.DEFAULT_THRESHOLDS` are given to COCOeval (its own
  ``np.linspace(0.5, 0.95, 10)`` differs in the last bits, which matters for an IoU exactly at a threshold);
- one area range covering every object (COCO's default ``small/medium/large`` ranges mark objects outside
  a range as "ignore"; lociseg has no area ranges), read from the ``all`` entry;
- ``maxDets`` above the number of predictions (COCO keeps only the top 100 per image by default; lociseg
  keeps all);
- one category, no crowd annotations (lociseg has neither);
- distinct scores. This is the one deliberate difference: lociseg treats predictions with equal scores
  as one operating point (they cannot be ranked against each other), whereas COCO ranks ties in input order,
  so with ties COCO's AP depends on the order in which detections are listed.

AP is read from ``COCOeval.eval["precision"]`` (101 recall levels x thresholds) rather than from the
printed summary, which fixes ``maxDets=100``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lociseg.metrics import DEFAULT_THRESHOLDS, aggregate, evaluate_image, ranked_average_precision

mask_utils = pytest.importorskip("pycocotools.mask", reason="pycocotools comes with the dev extra")
COCO = pytest.importorskip("pycocotools.coco").COCO
COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval


def _generator():
    path = Path(__file__).with_name("fixtures") / "make_stardist_fixture.py"
    spec = importlib.util.spec_from_file_location("make_stardist_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
SEEDS = (0, 1, 2, 3, 11, 12)


def _scored_pairs():
    """Seeded (gt, pred, scores) triples: scores distinct over all images, a few low-scored good matches."""
    out = []
    rng = np.random.default_rng(2026)
    pairs = GEN.label_pairs(SEEDS)
    n_pred = sum(int(p.max()) for _, p in pairs)
    scores = rng.permutation(n_pred) / n_pred + 0.01
    start = 0
    for gt, pred in pairs:
        n = int(pred.max())
        out.append((gt, pred, {lab: float(scores[start + lab - 1]) for lab in range(1, n + 1)}))
        start += n
    return out


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _coco_ap(triples) -> np.ndarray:
    """COCO AP per IoU threshold (DEFAULT_THRESHOLDS) of the images in ``triples``, pooled as COCO pools them."""
    images, anns, dets = [], [], []
    for image_id, (gt, pred, scores) in enumerate(triples, start=1):
        images.append({"id": image_id, "height": gt.shape[0], "width": gt.shape[1]})
        for lab in np.unique(gt[gt > 0]):
            rle = _rle(gt == lab)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": mask_utils.toBbox(rle).tolist(),
                }
            )
        for lab in np.unique(pred[pred > 0]):
            dets.append(
                {"image_id": image_id, "category_id": 1, "segmentation": _rle(pred == lab), "score": scores[int(lab)]}
            )
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="segm")
    ev.params.iouThrs = np.asarray(DEFAULT_THRESHOLDS, float)
    ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
    ev.params.maxDets = [len(dets) + 1]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][:, :, 0, 0, -1]  # (T, 101): the one category, area 'all', maxDets
    assert (precision >= 0).all()  # -1 would mean "no ground truth", which these images always have
    return precision.mean(axis=1)


def test_setup_has_errors_to_rank():
    """The AP values below are not all 0 or 1: ranking matters (otherwise the comparison would be weak)."""
    ap = _coco_ap(_scored_pairs())
    assert 0.2 < ap[0] < 0.95 and ap[-1] < ap[0]


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_per_image_ap_agrees_with_cocoeval(index):
    gt, pred, scores = _scored_pairs()[index]
    ours = ranked_average_precision(gt, pred, scores)
    coco = _coco_ap([(gt, pred, scores)])
    np.testing.assert_allclose(ours["ap"], coco, atol=1e-12)
    assert ours["ap50"] == pytest.approx(coco[0], abs=1e-12)
    assert ours["ap75"] == pytest.approx(coco[5], abs=1e-12)
    assert ours["map"] == pytest.approx(coco.mean(), abs=1e-12)


def test_pooled_ap_agrees_with_cocoeval():
    """``aggregate(by="sum")`` ranks the detections of all images together, as COCO does."""
    triples = _scored_pairs()
    pooled = aggregate([evaluate_image(g, p, s) for g, p, s in triples], by="sum")
    coco = _coco_ap(triples)
    np.testing.assert_allclose(pooled["per_threshold"]["ap"], coco, atol=1e-12)
    assert (pooled["ap50"], pooled["ap75"]) == pytest.approx((coco[0], coco[5]), abs=1e-12)
    assert pooled["map"] == pytest.approx(coco.mean(), abs=1e-12)

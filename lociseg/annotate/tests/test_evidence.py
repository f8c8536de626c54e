"""Label-free outline evidence: the per-cell target choice and the per-image quality estimate."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.annotate.evidence import (
    best_iou,
    choose_targets,
    outline_evidence,
    quality_estimate,
    stain_maps,
)
from lociseg.metrics import match_instances

CENTRES = [(40, 40), (40, 110), (110, 40), (110, 110)]
RADIUS = 22


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _scene(seed: int = 0, noise: float = 0.03):
    """Four disc cells: (nucleus, cytoplasm) stains, true labels and the nucleus centres."""
    rng = np.random.default_rng(seed)
    shape = (150, 150)
    truth = np.zeros(shape, np.int32)
    nuc = np.zeros(shape, np.float32)
    for k, c in enumerate(CENTRES, start=1):
        truth[_disc(shape, c, RADIUS)] = k
        nuc[_disc(shape, c, 7)] = 1.0
    cyto = (truth > 0).astype(np.float32) * 0.8 + 0.1 + rng.normal(0, noise, shape).astype(np.float32)
    return np.stack([nuc, cyto]), truth, np.array(CENTRES, np.float32)


def _shifted(truth: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(np.roll(truth, dy, 0), dx, 1)


def _dilated(truth: np.ndarray, r: int) -> np.ndarray:
    from skimage.segmentation import expand_labels

    return expand_labels(truth, r).astype(np.int32)


def _iou_with_truth(labels: np.ndarray, truth: np.ndarray) -> float:
    _, iou, _ = best_iou(truth, labels)
    return float(iou.mean())


@pytest.mark.parametrize("signal", ["contrast", "edge"])
@pytest.mark.parametrize("model_is_right", [True, False])
def test_choice_picks_the_outline_on_the_stain_edge(signal, model_is_right):
    image, truth, points = _scene()
    maps = stain_maps(image[1], 2 * RADIUS)
    right = truth
    wrong = _shifted(truth, 5, 4)  # off the edge: still the same cells at IoU 0.5
    assert match_instances(right, wrong, thresholds=[0.5]).f1[0] == 1.0
    model, machine = (right, wrong) if model_is_right else (wrong, right)
    targets, counts = choose_targets(model, machine, maps, points, pairs=signal)
    assert counts["pairs"] == 4
    assert counts["model_outline" if model_is_right else "machine_outline"] == 4
    assert _iou_with_truth(targets, truth) == pytest.approx(1.0)


def test_choice_rejects_a_dilated_outline():
    image, truth, points = _scene(1)
    maps = stain_maps(image[1], 2 * RADIUS)
    targets, counts = choose_targets(_dilated(truth, 4), truth, maps, points, pairs="contrast")
    assert counts["machine_outline"] == 4
    assert _iou_with_truth(targets, truth) == pytest.approx(1.0)


def test_cells_of_one_source_are_added_where_free():
    image, truth, points = _scene(2)
    maps = stain_maps(image[1], 2 * RADIUS)
    model = np.where(truth == 4, 0, truth)  # the model missed cell 4
    machine = np.where(truth == 1, 0, truth)  # the annotation missed cell 1
    targets, counts = choose_targets(model, machine, maps, points)
    assert counts["pairs"] == 2 and counts["model_only"] == 1 and counts["machine_only"] == 1
    assert match_instances(truth, targets, thresholds=[0.9]).f1[0] == 1.0


def test_signals_rank_the_true_outline_first():
    image, truth, points = _scene(3)
    maps = stain_maps(image[1], 2 * RADIUS)
    good = outline_evidence(truth, maps, points)
    bad = outline_evidence(_shifted(truth, 6, 0), maps, points)
    assert (good["edge"] > bad["edge"]).all()
    assert (good["contrast"] > bad["contrast"]).all()
    assert (good["nuclei"] == 1).all()


def test_quality_orders_clean_before_corrupted():
    image, truth, points = _scene(4)
    maps = stain_maps(image[1], 2 * RADIUS)
    reference = _shifted(truth, 1, 1)  # another source, close to the truth
    clean = quality_estimate(truth, reference, maps, points)
    # corrupted: two cells merged into one, one missed, one shifted off its edge
    bad = np.where(truth == 2, 1, truth)
    bad = np.where(bad == 4, 0, bad)
    bad = np.where(_shifted(truth, 7, 7) == 3, 3, np.where(bad == 3, 0, bad))
    corrupted = quality_estimate(bad, reference, maps, points)
    assert clean["quality"] > corrupted["quality"] + 0.1
    assert clean["recall"] == 1.0 and corrupted["recall"] < 1.0


def test_a_model_cell_without_a_nucleus_is_left_out():
    image, truth, points = _scene(5)
    maps = stain_maps(image[1], 2 * RADIUS)
    model = truth.copy()
    model[_disc(truth.shape, (75, 75), 8) & (truth == 0)] = 9  # a blob between the cells, no nucleus in it
    machine = truth
    targets, counts = choose_targets(model, machine, maps, points)
    assert counts["dropped"] == 1 and counts["model_only"] == 0
    assert targets[75, 75] == 0
    kept, counts = choose_targets(model, machine, maps, points, need_nucleus=False)
    assert counts["model_only"] == 1 and kept[75, 75] > 0


def test_the_size_limit_drops_machine_cells_far_from_the_median():
    image, truth, points = _scene(6)
    maps = stain_maps(image[1], 2 * RADIUS)
    machine = truth.copy()
    machine[_disc(truth.shape, (75, 75), 3) & (truth == 0)] = 9  # a speck: ~1/50 of the median area
    _, counts = choose_targets(np.zeros_like(truth), machine, maps, points)  # the default: 3x
    assert counts["machine_only"] == 4 and counts["dropped"] == 1
    _, counts = choose_targets(np.zeros_like(truth), machine, maps, points, max_size_ratio=None)
    assert counts["machine_only"] == 5


def test_view_agreement_marks_the_outline_that_moves_between_views():
    image, truth, points = _scene(3)
    maps = stain_maps(image[1], 2 * RADIUS)
    # a second view draws cells 1 and 2 the same, cell 3 shifted off its place
    view = np.where(truth == 3, 0, truth)
    view = np.where(_shifted(truth, 8, 0) == 3, 3, view)
    ev = outline_evidence(truth, maps, points, views=[view])
    assert ev["stable"][0] == 1.0 and ev["stable"][1] == 1.0
    assert ev["stable"][2] < 0.7
    assert np.isnan(outline_evidence(truth, maps, points)["stable"]).all()


def test_quality_counts_views_that_disagree():
    image, truth, points = _scene(4)
    maps = stain_maps(image[1], 2 * RADIUS)
    reference = _shifted(truth, 1, 1)
    same = quality_estimate(truth, reference, maps, points, views=[truth])
    moved = quality_estimate(truth, reference, maps, points, views=[_shifted(truth, 9, 9)])
    assert same["precision"] > moved["precision"] + 0.1
    # without views the estimate is the four-check one
    plain = quality_estimate(truth, reference, maps, points)
    assert plain["precision"] != same["precision"]


def test_the_plausible_source_leads_and_stable_picks_the_steady_outline():
    image, truth, points = _scene(4)
    maps = stain_maps(image[1], 2 * RADIUS)
    off = _shifted(truth, 5, 0)  # every outline off its cell's edge, still matched (IoU >= 0.5)
    targets, counts = choose_targets(off, truth, maps, points, lead="plausible")
    assert counts["lead"] == "machine"
    # a model that draws its wrong outlines the same way in every view still does not lead
    _, counts = choose_targets(off, truth, maps, points, views=[off])
    assert counts["lead"] == "machine"
    assert match_instances(truth, targets, thresholds=[0.9]).f1[0] == 1.0
    # pairs by stability: the outline the other views agree with wins, whichever source drew it
    targets, counts = choose_targets(off, truth, maps, points, pairs="stable", views=[truth])
    assert counts["machine_outline"] == counts["pairs"] > 0
    assert match_instances(truth, targets, thresholds=[0.9]).f1[0] == 1.0

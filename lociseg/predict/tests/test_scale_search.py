import numpy as np
import pytest
from scipy import ndimage as ndi

from lociseg.models.semantic import labels_to_instances
from lociseg.predict.scale_search import (
    brightness_table,
    ladder,
    pick_windows,
    search_scale,
)
from lociseg.transforms import diameter_from_labels, rescale_image

TARGET = 32.0


def _discs(shape, d, spacing, rng):
    """Label image of discs of diameter ``d`` on a jittered grid ``spacing`` x d apart (confluent near 1.1)."""
    labels = np.zeros(shape, np.int32)
    yy, xx = np.indices(shape)
    step = spacing * d
    k = 0
    for cy in np.arange(step / 2, shape[0] - d / 2, step):
        for cx in np.arange(step / 2, shape[1] - d / 2, step):
            y, x = cy + rng.uniform(-0.05, 0.05) * d, cx + rng.uniform(-0.05, 0.05) * d
            k += 1
            labels[(yy - y) ** 2 + (xx - x) ** 2 <= (d / 2) ** 2] = k
    return labels


class SizeTunedDetector:
    """Test double of a model trained at TARGET px: finds bright blobs, scores them by how close their size is to TARGET.

    Like a trained detector, it is sure of cells near its training size and
    unsure of much larger or smaller ones.
    """

    def __init__(self):
        self.pixels = 0

    def instances(self, tile):
        self.pixels += tile.shape[-1] * tile.shape[-2]
        labels, n = ndi.label(tile[0] > 0.5)
        inst = labels_to_instances(labels)
        if n:
            ids = np.unique(labels)
            area = np.bincount(labels.ravel())[ids[ids > 0]]  # labels_to_instances keeps the ids in order
            d = 2 * np.sqrt(area / np.pi)
            inst.scores[:] = np.exp(-0.5 * (np.log(d / TARGET) / 0.4) ** 2)
        return inst

    def locate(self, batch):
        return [(i.locations, i.scores) for i in map(self.instances, batch)]


@pytest.mark.parametrize("d", [8, 20, 45, 110, 190])
def test_search_finds_the_diameter_at_many_zooms(d, rng):
    side = int(max(300, 7 * d))
    gt = _discs((side, side), d, 1.3, rng)
    image = (gt > 0).astype(np.float32)[None]
    det = SizeTunedDetector()
    est = search_scale(det.locate, image, TARGET, predict=det.instances)
    true = diameter_from_labels(gt)
    assert est.found and est.diameter == pytest.approx(true, rel=0.1)
    assert est.factor == pytest.approx(TARGET / est.diameter)
    assert est.confidence > 0.5  # most cells score high at the chosen zoom (cells cut by the windows do not)
    meta = est.to_meta()
    assert meta["diameter"] == pytest.approx(est.diameter, abs=0.01) and len(meta["zooms"]) == len(meta["quality"])


def test_ladder_alone_lands_within_its_step(rng):
    gt = _discs((400, 400), 16, 1.4, rng)
    det = SizeTunedDetector()
    est = search_scale(det.locate, (gt > 0).astype(np.float32)[None], TARGET)  # no mask stage
    assert abs(np.log(est.diameter / diameter_from_labels(gt))) < np.log(2**0.5)
    q = est.quality
    best = int(np.argmax(q))
    assert 0 < best < len(q) - 1 and q[best] > q[best - 1] and q[best] > q[best + 1]  # a clear optimum


def test_sparse_field_windows_find_the_cells(rng):
    # a few cells in one corner of a large empty field: a central crop would see nothing
    image = np.zeros((1, 1200, 1200), np.float32)
    gt = _discs((240, 240), 24, 1.5, rng)
    image[0, 900:1140, 60:300] = gt > 0
    table = brightness_table(image)
    (y, x), *_ = pick_windows(table, 200, 4)
    assert 800 <= y <= 1140 and 0 <= x <= 300
    det = SizeTunedDetector()
    est = search_scale(det.locate, image, TARGET, predict=det.instances)
    assert est.diameter == pytest.approx(diameter_from_labels(gt), rel=0.1)


def test_nothing_found_and_cost_bounded(rng):
    det = SizeTunedDetector()
    est = search_scale(det.locate, np.zeros((1, 500, 500), np.float32), TARGET, predict=det.instances)
    assert not est.found and est.confidence == 0 and np.isnan(est.factor)
    # each zoom costs at most `windows` windows of `window`^2 px at model scale
    assert det.pixels <= len(ladder(TARGET, 4, 256, 2.0)) * 4 * 128**2


def test_ladder_spans_the_range():
    f = ladder(32, 6, 256, 2**0.5)
    assert f[0] == pytest.approx(32 / 256) and f[-1] >= 32 / 6
    assert np.allclose(f[1:] / f[:-1], 2**0.5)


@pytest.mark.slow
def test_real_field_at_two_zooms(data_root):
    from lociseg import load_dataset
    from lociseg.predict.api import load_model

    seg = load_model("nuclei", device="cpu")
    sample = load_dataset("koyuncu@test")[0]
    image = seg.normalize(np.asarray(sample.image, np.float32).reshape(-1, *sample.labels.shape))[:, :600, :600]
    true = diameter_from_labels(np.asarray(sample.labels)[:600, :600])
    for zoom in (0.5, 2.0):
        est = seg.search_scale(rescale_image(image, zoom))
        assert est.diameter == pytest.approx(true * zoom, rel=0.25), zoom


def test_location_pass_matches_full_prediction():
    import torch

    from lociseg.models.lacss import LacssModel

    torch.manual_seed(0)
    model = LacssModel().eval()
    with torch.no_grad():
        model.lpn.score.bias.fill_(1.0)  # some detections from an untrained model
    x = torch.randn(2, 2, 50, 70)
    located = model.predict_locations(x)
    assert len(located) == 2
    for b in range(2):
        full = model.predict_instances(x[b : b + 1])
        locs, scores = located[b]
        assert len(full) > 0 and np.allclose(locs, full.locations, atol=1e-4) and np.allclose(scores, full.scores)

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from lociseg.errors import ConfigError
from lociseg.models.lacss import LacssConfig, LacssModel
from lociseg.predict.api import Segmenter
from lociseg.predict.autoscale import estimate_scale, scale_factor
from lociseg.predict.size_model import (
    SIZE_FILE,
    SizeModel,
    fit_mask_response,
    fit_size_model,
    image_features,
    median_mask_diameter,
    refine_diameter,
    scale_agreement,
    view_crops,
    views_window,
)
from lociseg.transforms import diameter_from_labels


def _disc_image(side, d, rng, lattice=True):
    """Blurred, noisy discs of diameter ``d`` about 1.6 d apart; (image (1, H, W), labels).

    ``lattice``: on a grid jittered by 0.15 d; otherwise at random
    non-overlapping positions (a field without a period, as cells lie).
    """
    labels = np.zeros((side, side), np.int32)
    yy, xx = np.indices((side, side))
    step = 1.6 * d
    if lattice:
        grid = np.arange(step / 2, side, step)
        centres = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
        centres = centres + rng.uniform(-0.15, 0.15, centres.shape) * d
    else:
        centres = _scattered(side, d, round((side / step) ** 2), rng)
    for k, (y, x) in enumerate(centres, 1):
        r = d / 2 * rng.uniform(0.9, 1.1)
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= r**2] = k
    image = ndi.gaussian_filter((labels > 0).astype(np.float32), 1.0) + rng.normal(0, 0.05, labels.shape)
    return image.astype(np.float32)[None], labels


def _scattered(side, d, n, rng, tries=20):
    """Up to ``n`` random points in a ``side`` square at least 1.15 ``d`` apart (dart throwing)."""
    points = np.zeros((0, 2))
    for _ in range(tries):
        for p in rng.uniform(0, side, (n, 2)):
            if len(points) >= n:
                return points
            if not len(points) or np.min(np.sum((points - p) ** 2, 1)) >= (1.15 * d) ** 2:
                points = np.vstack([points, p])
    return points


@pytest.fixture(scope="module")
def encoder():
    """An untrained one-channel encoder, fixed seed: its pooled features still change steadily with object size."""
    torch.manual_seed(0)
    cfg = LacssConfig()
    cfg.input.in_channels = 1
    return LacssModel(cfg).eval().backbone


def _features(encoder, d, rng, side=512):
    image, labels = _disc_image(side, d, rng, lattice=False)
    return image_features(encoder, view_crops(image)), diameter_from_labels(labels)


@pytest.mark.slow
def test_fitted_size_model_finds_disc_diameters_at_several_zooms(encoder):
    """Fields of scattered discs (a lattice aliases with the encoder's strides, see the next test), 512 px as
    the one-pass path needs; the median of three fresh fields per diameter within 20 %."""
    rng = np.random.default_rng(0)
    train = [_features(encoder, d, rng) for d in np.exp(rng.uniform(math.log(6), math.log(120), 48))]
    x, y = np.array([f for f, _ in train]), np.array([d for _, d in train])
    sm = fit_size_model(x, y, np.arange(len(y)))
    assert sm.samples == 48 and sm.diameter_range[0] < 8 and sm.diameter_range[1] > 100
    assert sm.cv_error < 0.25
    for d in (10, 20, 40, 80):
        fields = [_features(encoder, d, rng) for _ in range(3)]
        ratio = np.median([float(sm.predict(f)[0]) / true for f, true in fields])
        assert ratio == pytest.approx(1, abs=0.2), (d, ratio)


@torch.no_grad()
def test_lattice_of_the_encoder_stride_aliases(encoder):
    """Why the fitted test draws scattered discs: a lattice of period 16 px (discs of 10 px) is 4 px in the
    quarter view, the stride of the first stage, which then sees the same phase everywhere."""
    rng = np.random.default_rng(0)
    spread = {}
    for lattice in (True, False):
        image, _ = _disc_image(512, 10, rng, lattice=lattice)
        first = encoder(torch.from_numpy(view_crops(image)[1])[None])[0][0].flatten(1)
        spread[lattice] = float(first.std(1).mean())
    assert spread[True] < 0.5 * spread[False]


def test_fit_recovers_a_linear_law_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5))
    d = np.exp(2.5 + 0.4 * x[:, 0] - 0.2 * x[:, 3])
    sm = fit_size_model(x, d, np.arange(60) // 2, sets=["synthetic"])
    assert sm.cv_error < 0.05 and sm.alpha <= 1.0
    assert np.allclose(sm.predict(x), d, rtol=0.05)
    path = sm.save(tmp_path)
    assert path.name == SIZE_FILE
    back = SizeModel.load(tmp_path)
    assert back.sets == ["synthetic"] and np.allclose(back.predict(x[:3]), sm.predict(x[:3]))
    assert SizeModel.load(tmp_path / "missing") is None
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable size model"):
        SizeModel.load(tmp_path)


def test_fit_needs_enough_samples():
    with pytest.raises(ConfigError, match="at least"):
        fit_size_model(np.zeros((4, 3)), np.ones(4), np.arange(4))


def test_in_range_widens_the_fitted_range():
    sm = SizeModel([[1.0, 256]], [0.0], [1.0], [0.0], 0.0, 1.0, 0.1, [10.0, 100.0])
    assert sm.in_range(10.0) and sm.in_range(140.0) and sm.in_range(7.0)
    assert not sm.in_range(5.0) and not sm.in_range(200.0) and not sm.in_range(float("nan"))


def test_views_are_aligned_and_centred():
    image = np.zeros((1, 1500, 700), np.float32)
    image[:, 700:800, 300:400] = 1  # a bright square at the centre
    native, quarter = view_crops(image)
    assert native.shape == (1, 256, 256) and native[0, 128, 128] == 1 and native[0, 0, 0] == 0
    assert quarter.shape[1] % 32 == 0 and quarter.shape[2] % 32 == 0 and quarter.shape[1] <= 256
    small = view_crops(np.ones((1, 20, 50), np.float32))  # smaller than one network cell: padded
    assert all(c.shape[1] >= 32 and c.shape[2] >= 32 for c in small)
    ys, xs = views_window((4000, 300))
    assert ys.stop - ys.start == 1024 and (xs.start, xs.stop) == (0, 300)


def test_median_mask_diameter_counts_confident_cells():
    rng = np.random.default_rng(2)
    _, labels = _disc_image(300, 20, rng)
    scores = np.ones(labels.max(), np.float32)
    assert median_mask_diameter(labels, scores) == pytest.approx(diameter_from_labels(labels))
    assert math.isnan(median_mask_diameter(labels, np.zeros_like(scores)))  # no confident cell


def test_mask_response_is_fitted_and_inverted():
    k = np.repeat([0.7, 1.0, 1.4], 4)
    bias, slope = fit_mask_response(k, np.exp(-0.05 + 0.4 * np.log(k)))
    assert bias == pytest.approx(-0.05) and slope == pytest.approx(0.4)
    sm = SizeModel([[1.0, 256]], [0.0], [1.0], [0.0], 0.0, 1.0, 0.1, [5.0, 200.0], mask_bias=bias, mask_slope=slope)
    # cells of 20 px segmented as if 28 px (k = 1.4): masks of 20 * exp(-0.05 + 0.4 log 1.4) px imply 20 px
    measured = 20 * math.exp(-0.05 + 0.4 * math.log(1.4))
    assert refine_diameter(sm, measured, 28.0) == pytest.approx(20.0)
    assert refine_diameter(sm, 1000.0, 28.0) == pytest.approx(56.0)  # huge masks: at most a factor 2 larger
    assert math.isnan(refine_diameter(sm, float("nan"), 28.0))
    with pytest.raises(ConfigError, match="two scales"):
        fit_mask_response(np.ones(5), np.ones(5))


def test_scale_agreement_falls_with_the_ratio():
    assert scale_agreement(20.0, 20.0) == 1.0
    assert scale_agreement(20.0, 25.0) == pytest.approx(1 - math.log(1.25) / math.log(1.5))
    assert scale_agreement(20.0, 40.0) == 0.0 and scale_agreement(20.0, float("nan")) == 0.0


def _segmenter(tmp_path, diameter_range):
    torch.manual_seed(0)
    cfg = LacssConfig()
    cfg.input.in_channels = 1
    model = LacssModel(cfg)
    n = 2 * sum(model.backbone.widths) * 2  # mean and std of each stage, two views
    sm = SizeModel([[1.0, 256], [0.25, 256]], [0.0] * n, [1.0] * n, [0.0] * n, math.log(20.0), 1.0, 0.1, diameter_range)
    sm.save(tmp_path)
    model.checkpoint_path = tmp_path
    return Segmenter(model, device="cpu")


def test_segmenter_uses_the_size_model_in_one_pass(tmp_path):
    seg = _segmenter(tmp_path, [10.0, 40.0])
    assert seg.size_model is not None
    image = np.random.default_rng(3).random((1, 512, 512)).astype(np.float32)
    est = estimate_scale(seg, image, seg.percentiles(image))
    assert est.method == "size-model" and est.diameter == pytest.approx(20.0)
    assert est.factor == pytest.approx(seg.spec.target_diameter / 20.0) and est.to_meta()["method"] == "size-model"
    small = image[:, :300, :300]  # under MIN_ONE_PASS_SIDE: the views would be mostly padding
    assert estimate_scale(seg, small, seg.percentiles(small)).method == "search"


def test_estimate_outside_the_fitted_range_falls_back_to_the_search(tmp_path):
    seg = _segmenter(tmp_path, [100.0, 200.0])  # 20 px is far below what it was fitted on
    image = np.random.default_rng(4).random((1, 512, 512)).astype(np.float32)
    assert estimate_scale(seg, image, seg.percentiles(image)).method == "search"


def test_unsure_masks_send_segment_to_the_search(tmp_path, monkeypatch):
    seg = _segmenter(tmp_path, [10.0, 40.0])
    calls = []
    real = seg.search_scale_window

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(seg, "search_scale_window", spy)
    image = np.random.default_rng(5).random((1, 512, 512)).astype(np.float32)
    with pytest.warns(UserWarning):
        _, table = seg.segment(image)  # an untrained model finds no confident cell: the estimate is unchecked
    assert calls == [1] and table.meta["scale_unsure"]


def test_scale_range_keeps_the_image_scale():
    torch.manual_seed(0)
    seg = Segmenter(LacssModel(LacssConfig()), device="cpu")
    assert scale_factor(seg.spec, 16.0) == pytest.approx(2.0)
    seg.spec.scale_range = [20.0, 64.0]
    assert scale_factor(seg.spec, 40.0) == 1.0 and scale_factor(seg.spec, 10.0) == pytest.approx(2.0)
    assert scale_factor(seg.spec, 128.0) == pytest.approx(0.5)
    bad = LacssConfig()
    bad.input.scale_range = [40.0, 64.0]  # target 32 px outside it
    with pytest.raises(ConfigError, match="scale_range"):
        bad.input.validate("input")

"""data.sampler 'points': crops centred on annotated points, drawn uniformly over all points."""

import numpy as np
import pytest

from lociseg.errors import ConfigError
from lociseg.train.config import AugmentConfig, ExperimentConfig
from lociseg.train.data import Prepared, batch_arrays, pick_point, point_counts, sample_crop


def _item(name, points, size=100):
    img = np.zeros((1, size, size), np.float32)
    fg = np.zeros((size, size), np.float32)
    return Prepared(name, img, None, np.asarray(points, np.float32).reshape(-1, 2), fg, 1.0)


def test_pick_point_is_uniform_over_all_points():
    counts = np.array([1, 0, 3])  # four points: item 0 has one, item 2 three
    rng = np.random.default_rng(0)
    draws = [pick_point(counts, rng) for _ in range(4000)]
    assert {d for d in draws} == {(0, 0), (2, 0), (2, 1), (2, 2)}
    share = np.mean([d[0] == 0 for d in draws])
    assert share == pytest.approx(0.25, abs=0.03)  # by points, not by image


@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_crop_is_centred_on_the_point_also_past_the_border(scale):
    aug = AugmentConfig(flips=True, scale_min=scale, scale_max=scale, gain=0, gamma=0, noise=0)
    for centre in ([50.0, 40.0], [3.0, 97.0]):  # inside, and near a corner (the crop then reaches past it)
        item = _item("a", [centre, [10.0, 10.0]])
        crop = sample_crop(item, 32, aug, np.random.default_rng(1), weak=True, centre=np.array(centre))
        # an even-sided crop's centre is a pixel corner: a pixel-centred point is half a pixel off per axis
        d = np.abs(crop["points"] - (32 / 2 - 0.5)).max(axis=1)
        assert d.min() <= 0.5 * scale + 1e-6
        if centre[0] < 10:
            assert crop["valid"].mean() < 0.5  # most of the crop lies outside the image


def test_batches_use_the_point_sampler_and_refuse_items_without_points():
    items = [_item("a", [[20.0, 20.0]]), _item("b", [[70.0, 60.0], [30.0, 80.0]])]
    cfg = ExperimentConfig().override(
        {
            "data.sampler": "points",
            "data.crop_size": 32,
            "optim.batch_size": 6,
            "data.augment.flips": False,
            "data.augment.scale_min": 1.0,
            "data.augment.scale_max": 1.0,
        }
    )
    batch = batch_arrays(items, cfg, step=3, weak=True)
    for pts in batch["points"]:
        assert np.abs(pts.numpy() - 15.5).max(axis=1).min() <= 0.5
    assert np.array_equal(point_counts(items), [1, 2])
    with pytest.raises(ConfigError, match="sampler"):
        point_counts([Prepared("c", items[0].image, None, None, None, 1.0)])

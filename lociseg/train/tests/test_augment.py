"""Imaging augmentations of training crops: each one's effect on a synthetic image."""

import numpy as np
import pytest

from lociseg.train.config import AugmentConfig
from lociseg.train.data import (
    Prepared,
    illumination_field,
    imaging_augment,
    poisson_gaussian,
    quantize,
    sample_crop,
)

OFF = dict(flips=False, scale_min=1.0, scale_max=1.0, gain=0.0, gamma=0.0, noise=0.0)


def _image(channels=2, size=96):
    """Normalised-looking crop: bright discs on a dark, slightly noisy background (values about -0.05..1.05)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((channels, size, size))
    for cy, cx in rng.uniform(10, size - 10, size=(12, 2)):
        img[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 1.0
    img *= np.linspace(0.6, 1.0, channels)[:, None, None]
    return (img + rng.normal(0, 0.02, img.shape)).astype(np.float32)


def _aug(**kw):
    return AugmentConfig(**{**OFF, **kw})


def test_illumination_field_range_smooth_deterministic():
    a = illumination_field((64, 80), 0.5, np.random.default_rng(3))
    b = illumination_field((64, 80), 0.5, np.random.default_rng(3))
    c = illumination_field((64, 80), 0.5, np.random.default_rng(4))
    assert a.shape == (64, 80) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.max() == pytest.approx(1.0) and a.min() == pytest.approx(0.5, abs=1e-6)
    # smooth: no step between neighbours larger than a few percent of the span
    assert np.abs(np.diff(a, axis=0)).max() < 0.05 and np.abs(np.diff(a, axis=1)).max() < 0.05


def test_quantize_levels_and_error():
    x = np.linspace(-0.1, 1.2, 5000)
    q = quantize(x, 8, 1.0)
    assert len(np.unique(q)) == 256
    assert q.min() == 0.0 and q.max() == pytest.approx(1.0)
    inside = (x >= 0) & (x <= 1)
    assert np.abs(q - x)[inside].max() <= 0.5 / 255 + 1e-12
    assert len(np.unique(quantize(x, 4, 1.0))) == 16


def test_poisson_gaussian_mean_and_variance():
    x = np.full((200, 200), 0.5)
    out = poisson_gaussian(x, 40.0, 0.05, np.random.default_rng(0))
    assert np.array_equal(out, poisson_gaussian(x, 40.0, 0.05, np.random.default_rng(0)))
    assert out.mean() == pytest.approx(0.5, abs=0.01)
    assert out.var() == pytest.approx(0.5 / 40 + 0.05**2, rel=0.1)


def test_all_off_is_identity_and_draws_nothing():
    img = _image()
    rng = np.random.default_rng(1)
    out = imaging_augment(img, _aug(), rng)
    assert np.array_equal(out, img)
    assert rng.random() == np.random.default_rng(1).random()  # the stream is untouched


# an offset alone is undone (test_offset_alone_is_undone); it acts through quantisation and shot noise
@pytest.mark.parametrize(
    "kw",
    [
        dict(illumination_p=1.0),
        dict(dim_p=1.0),
        dict(offset_p=1.0, quantize_p=1.0),
        dict(offset_p=1.0, shot_noise_p=1.0),
        dict(shot_noise_p=1.0),
        dict(saturate_p=1.0),
        dict(quantize_p=1.0),
        dict(blank_channel_p=1.0),
    ],
)
def test_each_augmentation_deterministic_shape_dtype(kw):
    img = _image()
    a = imaging_augment(img, _aug(**kw), np.random.default_rng([0, 9, 1]))
    b = imaging_augment(img, _aug(**kw), np.random.default_rng([0, 9, 1]))
    others = [imaging_augment(img, _aug(**kw), np.random.default_rng([0, s, 1])) for s in range(10, 14)]
    assert a.shape == img.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b) and not all(np.array_equal(a, c) for c in others)
    assert not np.array_equal(a, img)
    assert a.min() > -0.5 and a.max() < 2.0  # still in normalised units


def test_offset_alone_is_undone():
    """A pure background offset is removed again, as percentile normalisation removes it."""
    img = _image()
    out = imaging_augment(img, _aug(offset_p=1.0, offset_max=5.0), np.random.default_rng(2))
    assert np.allclose(out, img, atol=1e-5)


def test_offset_costs_grey_levels_when_quantised():
    """A camera floor leaves fewer of the 8-bit levels to the signal."""
    img = _image(channels=1)
    counts = {}
    for floor in (0.0, 8.0):
        aug = _aug(quantize_p=1.0, offset_p=1.0, offset_max=floor)
        counts[floor] = len(np.unique(imaging_augment(img, aug, np.random.default_rng(5))))
    assert counts[8.0] < counts[0.0] / 3
    assert counts[0.0] <= 256


def test_saturation_clips_and_rescales():
    img = _image(channels=1)
    out = imaging_augment(img, _aug(saturate_p=1.0, saturate_quantile=0.5), np.random.default_rng(0))
    top = out.max()
    assert top == pytest.approx(1.0, abs=1e-5)  # the clip level becomes 1, as re-normalising makes it
    assert (out >= top - 1e-6).mean() >= 0.005  # many pixels sit at the clip
    # below the clip the order of pixels is kept
    below = out[0] < top - 1e-6
    assert np.corrcoef(out[0][below], img[0][below])[0, 1] > 0.99


def test_dim_stain_is_noisier():
    """Same draws, only the dimming range differs: the dimmer stain has more noise relative to its signal."""
    img = _image(channels=1)
    err = {}
    for dim_min in (1.0, 0.05):
        aug = _aug(dim_p=1.0, dim_min=dim_min, shot_noise_p=1.0, photons_min=50.0)
        err[dim_min] = np.mean([np.std(imaging_augment(img, aug, np.random.default_rng(s)) - img) for s in range(6)])
    assert err[0.05] > 2 * err[1.0]


def test_uneven_illumination_multiplies_by_a_smooth_field():
    img = np.abs(_image(channels=1)) + 0.1
    out = imaging_augment(img, _aug(illumination_p=1.0, illumination=0.5), np.random.default_rng(4))
    ratio = out / img
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.0 + 1e-5 and ratio.max() - ratio.min() > 0.3


def test_blank_channel_spares_the_first_and_single_channel_images():
    img = _image(channels=3)
    kinds = set()
    for seed in range(12):
        out = imaging_augment(img, _aug(blank_channel_p=1.0), np.random.default_rng(seed))
        assert np.array_equal(out[0], img[0])
        changed = [k for k in (1, 2) if not np.array_equal(out[k], img[k])]
        assert len(changed) == 1
        k = changed[0]
        kinds.add("absent" if not out[k].any() else "blank")
        if out[k].any():  # camera noise stretched by the normalisation: no structure, spans about 0..1
            assert abs(np.corrcoef(out[k].ravel(), img[k].ravel())[0, 1]) < 0.1
            assert -0.5 < out[k].min() < 0.1 and 0.9 < out[k].max() < 1.5
    assert kinds == {"absent", "blank"}
    one = _image(channels=1)
    assert np.array_equal(imaging_augment(one, _aug(blank_channel_p=1.0), np.random.default_rng(0)), one)


def test_crop_with_every_augmentation_is_a_function_of_its_seed():
    img = _image(size=120)
    lab = np.zeros((120, 120), np.int32)
    lab[10:40, 20:60] = 3
    item = Prepared("x", img, lab, None, None, 1.0)
    aug = AugmentConfig(
        illumination_p=1.0,
        dim_p=1.0,
        offset_p=1.0,
        shot_noise_p=1.0,
        saturate_p=1.0,
        quantize_p=1.0,
        blank_channel_p=1.0,
    )
    a = sample_crop(item, 64, aug, np.random.default_rng([0, 3, 0]), weak=False)
    b = sample_crop(item, 64, aug, np.random.default_rng([0, 3, 0]), weak=False)
    assert a["image"].shape == (2, 64, 64) and a["image"].dtype == np.float32 and np.isfinite(a["image"]).all()
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["labels"], b["labels"])

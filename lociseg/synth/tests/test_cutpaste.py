"""Tests of cut-and-paste synthesis: labels consistent with pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from lociseg.data import Sample as make_sample
from lociseg.data import load_samples
from lociseg.synth import (
    cut_paste_synthesize,
    extend_dataset,
    extract_cells,
    synthesize_background,
    weak_annotations,
)


def _toy_samples(rng: np.random.Generator, n: int = 2, size: int = 96) -> list:
    """Ellipse cells, each with its own constant intensity (>= 100), on a zero background."""
    samples = []
    yy, xx = np.mgrid[:size, :size]
    for s in range(n):
        labels = np.zeros((size, size), np.int32)
        image = np.zeros((1, size, size), np.uint16)
        k = 0
        for cy in range(14, size - 10, 22):
            for cx in range(14, size - 10, 22):
                ry, rx = rng.uniform(5, 9, size=2)
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
                k += 1
                labels[m] = k
                image[0, m] = 100 + 10 * (k + 20 * s)
        samples.append(make_sample(image=image, labels=labels, name=f"toy{s}", meta={}))
    return samples


def test_hard_paste_every_cell_is_exactly_one_instance(rng):
    samples = _toy_samples(rng)
    out = cut_paste_synthesize(samples, n_images=3, confluence=0.7, rng=1, feather=0.0, min_area=8, max_overlap=1.0)
    n_occluded = 0
    for s in out:
        img, lab = s.image[0].astype(int), s.labels
        assert lab.dtype == np.int32 and lab.shape == img.shape
        ids = np.unique(lab[lab > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
        assert len(ids) == s.meta["n_cells"] > 0
        # no orphan pixels: drawn cell pixels are exactly the labelled pixels (background is 0 here)
        np.testing.assert_array_equal(img > 0, lab > 0)
        for i in ids:
            region = lab == i
            assert ndi.label(region)[1] == 1  # one connected piece
            assert len(np.unique(img[region])) == 1  # one pasted cell (each source cell has its own intensity)
        n_occluded += s.meta["n_pasted"] - s.meta["n_cells"]
        assert s.meta["confluence"] >= 0.5
        np.testing.assert_array_equal(s.foreground, lab > 0)
        assert len(s.points) == len(ids)
        py, px = np.round(s.points).astype(int).T
        np.testing.assert_array_equal(lab[py, px], ids)  # each point inside its own cell
    assert n_occluded > 0  # the test really exercised dropping occluded remnants


def test_feathered_paste_labels_follow_the_dominant_pixels(rng):
    samples = _toy_samples(rng)
    out = cut_paste_synthesize(samples, n_images=2, confluence=0.5, rng=2, feather=1.0)
    assert len(out) == 2
    for s in out:
        lab = s.labels
        # alpha > 0.5 exactly on a cell's labelled pixels: cells are >= 100, so labelled pixels stay > 50
        assert (s.image[0][lab > 0] > 50).all()
        agree = ((s.image[0] > 50) == (lab > 0)).mean()
        assert agree > 0.98
        # the feathered edges blend: some labelled pixels are no pure source intensity
        pure = np.concatenate([np.unique(x.image) for x in samples])
        assert not np.isin(s.image[0][lab > 0], pure).all()


def test_same_seed_same_output(rng):
    samples = _toy_samples(rng)
    a = cut_paste_synthesize(samples, n_images=2, rng=5)
    b = cut_paste_synthesize(samples, n_images=2, rng=5)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.labels, y.labels)
    other = cut_paste_synthesize(samples, n_images=2, rng=6)
    assert not all(np.array_equal(x.labels, y.labels) for x, y in zip(a, other))  # the seed is used


def test_extend_dataset_factor_and_errors(rng):
    samples = _toy_samples(rng)
    ext = extend_dataset(samples, factor=2, rng=0)
    assert len(ext) == 2 + 4 and ext[0] is samples[0]
    with pytest.raises(ValueError):
        cut_paste_synthesize([make_sample(image=np.zeros((1, 8, 8)), labels=None, name="x", meta={})], n_images=1)


def test_weak_annotations_point_inside_non_convex_object():
    lab = np.zeros((20, 20), int)
    lab[2:18, 2:5] = 1
    lab[2:5, 2:18] = 1  # an L: centroid lies outside
    pts, fg = weak_annotations(lab)
    y, x = np.round(pts[0]).astype(int)
    assert lab[y, x] == 1 and fg.sum() == (lab > 0).sum()


def test_background_keeps_real_background_statistics(data_root):
    sample = load_samples("bbbc018", limit=1)[0]
    image, labels = np.asarray(sample.image, np.float32), sample.labels
    free = ~ndi.binary_dilation(labels > 0, iterations=3)
    bg = synthesize_background(image, labels, labels.shape, np.random.default_rng(0))
    for c in range(image.shape[0]):
        real = image[c][free]
        assert np.median(bg[c]) == pytest.approx(np.median(real), rel=0.05)
        assert bg[c].std() == pytest.approx(real.std(), rel=0.35)


def test_real_cells_synthesis_is_consistent(data_root):
    samples = load_samples("dsb2018-train", limit=4)
    cells = extract_cells(samples)
    assert len(cells) > 20
    for s in cut_paste_synthesize(samples, n_images=2, rng=0, cells=cells):
        assert s.image.dtype == samples[0].image.dtype
        comps = [ndi.label(s.labels == i)[1] for i in range(1, s.labels.max() + 1)]
        assert comps and all(c == 1 for c in comps)
        assert s.meta["confluence"] >= 0.7 * s.meta["confluence_target"]

"""Streaming paste against keeping every instance to the end, on real fields with the shipped ``cells`` model."""

import numpy as np
import pytest

from lociseg.metrics import match_instances
from lociseg.predict import api, paste_instances
from lociseg.transforms import rescale_instances


@pytest.fixture(scope="module")
def segmenter():
    return api.load_model("cells", device="cpu")


def _paste_at_the_end(seg, img, diameter, tile_size, overlap):
    """What ``segment`` did before streaming: all tiles' instances kept, then one paste."""
    factor = seg.spec.target_diameter / diameter
    inst, model_shape = seg.predict_instances(seg.normalize(img), factor, tile_size=tile_size, overlap=overlap)
    shape = img.shape[-2:]
    inst = rescale_instances(inst, model_shape, shape)
    area_scale = shape[0] * shape[1] / (model_shape[0] * model_shape[1])
    labels, _ = paste_instances(inst, shape, min_area=max(1, round(8 * area_scale)))
    return labels


def _field(data_root, which):
    from lociseg.data import load_dataset
    from lociseg.io import read_image

    if which == "bbbc018":
        return load_dataset("bbbc018@test", root=data_root)[5].image, 23.0, 256, 128
    path = sorted((data_root / "aitslab_u2os" / "cells" / "images").glob("*.tif"))[0]
    # channel 1 is the cell channel, 0 the nuclei: the model takes (actin-like, DNA); ~110 px cells
    return read_image(path)[[1, 0]], 110.0, 160, 96


@pytest.mark.parametrize("which", ["bbbc018", "aitslab"])
def test_streaming_segment_matches_paste_at_the_end(segmenter, data_root, which):
    img, diameter, tile, overlap = _field(data_root, which)
    old = _paste_at_the_end(segmenter, img, diameter, tile, overlap)
    new, table = segmenter.segment(img, diameter=diameter, tile_size=tile, overlap=overlap)
    from lociseg.predict.tiling import n_tiles
    from lociseg.transforms import scaled_shape

    assert n_tiles(scaled_shape(img.shape[-2:], segmenter.spec.target_diameter / diameter), tile, overlap, 32) >= 4
    n_old, n_new = int(old.max()), int(new.max())
    assert n_old > 10 and len(table) == n_new
    m = match_instances(old, new, thresholds=[0.9])
    assert m.tp[0] >= 0.995 * max(n_old, n_new)


def test_segment_reads_a_lazy_tiff_tile_by_tile_with_the_same_result(segmenter, data_root, tmp_path):
    import tifffile

    from lociseg.io import LazyImage, read_image

    img, diameter, tile, overlap = _field(data_root, "bbbc018")
    tifffile.imwrite(tmp_path / "field.tif", img, tile=(128, 128))
    lazy = read_image(tmp_path / "field.tif", lazy_above=0)
    assert isinstance(lazy, LazyImage)
    reads = []
    lazy_get = LazyImage.__getitem__

    def spy(self, key):
        out = lazy_get(self, key)
        reads.append(out.size)
        return out

    LazyImage.__getitem__ = spy
    try:
        labels, table = segmenter.segment(lazy, diameter=diameter, tile_size=tile, overlap=overlap)
    finally:
        LazyImage.__getitem__ = lazy_get
    assert max(reads) < img.size  # never read whole
    expected, _ = segmenter.segment(img, diameter=diameter, tile_size=tile, overlap=overlap)
    assert np.array_equal(labels, expected)

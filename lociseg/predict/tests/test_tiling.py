import numpy as np
import pytest

from lociseg.models.semantic import labels_to_instances
from lociseg.predict import iter_tiles, paste_instances, predict_tiled
from lociseg.predict.tiling import axis_tiles, concatenate_instances, n_tiles
from lociseg.structures import Instances


def oracle(tile: np.ndarray) -> Instances:
    """A perfect 'model': the last channel carries the ground-truth labels of the tile."""
    return labels_to_instances(tile[-1].astype(np.int64))


def _stacked(sample):
    return np.concatenate([sample.image.astype(np.float32), sample.labels[None].astype(np.float32)])


@pytest.mark.parametrize("shape,tile,overlap", [((512, 512), 256, 128), ((700, 301), 200, 64), ((50, 1000), 128, 32)])
def test_cores_partition_image(shape, tile, overlap):
    cover = np.zeros(shape, np.int32)
    core = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    tiles = list(iter_tiles(shape, tile, overlap))
    assert len(tiles) == n_tiles(shape, tile, overlap)
    for t in tiles:
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        cy0, cy1, cx0, cx1 = t.core
        inside = (yy >= cy0) & (yy < cy1) & (xx >= cx0) & (xx < cx1)
        core += inside
        # the core keeps at least overlap/2 away from inner tile edges
        ys, xs = np.nonzero(inside)
        if t.y0 > 0:
            assert ys.min() >= t.y0 + overlap / 2 - 1
        if t.y1 < shape[0]:
            assert ys.max() < t.y1 - overlap / 2 + 1
    assert cover.min() >= 1
    assert np.all(core == 1)


def test_bad_overlap():
    with pytest.raises(ValueError):
        list(iter_tiles((100, 100), 64, 64))


def _same_partition(a, b):
    """Both label images split the same pixels into the same objects."""
    if not np.array_equal(a > 0, b > 0):
        return False
    fg = a > 0
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[fg])) == len(np.unique(b[fg]))


@pytest.mark.parametrize("spec,tile,overlap", [("bbbc018@val", 256, 160), ("koyuncu@train", 300, 96)])
def test_tiled_equals_untiled_on_real_image(data_root, spec, tile, overlap):
    from lociseg.data import load_dataset

    sample = load_dataset(spec, root=data_root)[0]
    image = _stacked(sample)
    whole = oracle(image)
    tiled = predict_tiled(oracle, image, tile_size=tile, overlap=overlap)
    assert n_tiles(image.shape[1:], tile, overlap) > 4
    # every cell exactly once
    assert len(tiled) == len(whole)
    assert np.allclose(np.sort(tiled.locations[:, 0]), np.sort(whole.locations[:, 0]), atol=1e-3)
    kw = dict(min_area=1, min_fragment_fraction=0.0)
    lw, _ = paste_instances(whole, sample.shape, **kw)
    lt, _ = paste_instances(tiled, sample.shape, **kw)
    assert _same_partition(lw, lt)  # no cell cut at a seam


def test_small_overlap_cuts_cells(data_root):
    """The overlap must exceed the cells: with a tiny overlap some cells come out cut or twice."""
    from lociseg.data import load_dataset

    sample = load_dataset("bbbc018@val", root=data_root)[0]
    image = _stacked(sample)
    whole = paste_instances(oracle(image), sample.shape, min_area=1, min_fragment_fraction=0.0)[0]
    tiled = paste_instances(
        predict_tiled(oracle, image, tile_size=128, overlap=8), sample.shape, min_area=1, min_fragment_fraction=0.0
    )[0]
    assert not _same_partition(whole, tiled)


def test_predict_fn_called_lazily_per_tile():
    calls = []

    def fn(tile):
        calls.append(tile.shape)
        return Instances.empty((4, 4))

    out = predict_tiled(fn, np.zeros((1, 300, 300), np.float32), tile_size=128, overlap=32)
    assert len(out) == 0 and len(calls) == n_tiles((300, 300), 128, 32) == 9
    assert all(s[0] == 1 and max(s[1:]) <= 128 for s in calls)  # tiles no larger than asked
    # a small image is one call on the whole image
    calls.clear()
    predict_tiled(fn, np.zeros((1, 100, 90), np.float32), tile_size=128, overlap=32)
    assert calls == [(1, 100, 90)]


def test_tiles_are_no_larger_than_covering_the_axis_needs():
    # an axis a little over one tile: two tiles of about half, not two full tiles (~2x the pixels)
    tiles = axis_tiles(1100, 1024, 128, 32)
    assert len(tiles) == 2 and sum(e - s for s, e, _, _ in tiles) <= 1.3 * 1100
    for length in range(1025, 6000, 37):
        tiles = axis_tiles(length, 1024, 128, 32)
        assert tiles[0][0] == 0 and tiles[-1][1] == length
        assert all(s % 32 == 0 and e - s <= 1024 + 31 for s, e, _, _ in tiles)
        assert all(a[1] - b[0] >= 128 for a, b in zip(tiles, tiles[1:]))  # every seam keeps the overlap
        assert len(tiles) == -(-(length - 128) // (1024 - 128))  # as many tiles as 1,024 px tiles need


def test_concatenate_pads_windows():
    a = Instances(
        np.zeros((1, 2), np.float32), np.ones(1, np.float32), np.ones((1, 3, 5), np.float32), np.array([[10, 10]])
    )
    b = Instances(
        np.zeros((1, 2), np.float32), np.ones(1, np.float32), np.ones((1, 7, 2), np.float32), np.array([[0, 0]])
    )
    c = concatenate_instances([a, b])
    assert c.masks.shape == (2, 7, 5)
    la, _ = paste_instances(a, (30, 30), min_area=1)
    lc, _ = paste_instances(c.select([0]), (30, 30), min_area=1)
    np.testing.assert_array_equal(la, lc)


@pytest.mark.parametrize("shape", [(700, 1000), (1025, 97), (2049, 2048)])
def test_aligned_tiles_cover_the_image_and_cores_partition_it(shape):
    from lociseg.predict.tiling import iter_tiles

    tiles = list(iter_tiles(shape, 384, 128, align=32))
    covered = np.zeros(shape, np.int32)
    owner = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for t in tiles:
        assert t.y0 % 32 == 0 and t.x0 % 32 == 0
        assert t.y1 - t.y0 <= 384 + 31 and t.x1 - t.x0 <= 384 + 31
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
        cy0, cy1, cx0, cx1 = t.core
        owner += (yy >= cy0) & (yy < cy1) & (xx >= cx0) & (xx < cx1)
        # every owned pixel lies inside the tile
        assert not (
            ((yy >= cy0) & (yy < cy1) & (xx >= cx0) & (xx < cx1))
            & ~((yy >= t.y0) & (yy < t.y1) & (xx >= t.x0) & (xx < t.x1))
        ).any()
    assert covered.min() >= 1 and (owner == 1).all()

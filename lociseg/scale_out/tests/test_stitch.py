"""Stitching blocks on synthetic cells: every kind of block border, against the single-image paster."""

import json

import numpy as np
import pytest

from lociseg.predict.paste import paste_instances
from lociseg.scale_out.blocks import block_grid, save_block, stitch_blocks
from lociseg.structures import Instances

zarr = pytest.importorskip("zarr")


def _instances(cells: list[tuple[np.ndarray, float]], window: int) -> Instances:
    """Hard masks as instances: each (boolean image-size mask, score) in a window around its centroid."""
    locs, scores, masks, origins = [], [], [], []
    for mask, score in cells:
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        oy, ox = int(cy) - window // 2, int(cx) - window // 2
        win = np.zeros((window, window), np.float32)
        yy, xx = ys - oy, xs - ox
        assert yy.min() >= 0 and xx.min() >= 0 and yy.max() < window and xx.max() < window
        win[yy, xx] = 1.0
        locs.append((cy, cx))
        scores.append(score)
        masks.append(win)
        origins.append((oy, ox))
    return Instances(
        np.asarray(locs, np.float32), np.asarray(scores, np.float32), np.stack(masks), np.asarray(origins, np.int64)
    )


def _stitch(tmp_path, inst: Instances, shape, block, halo, **rules):
    """Pass 1 done by the single-image paster per block (cells located in its core), then passes 2-3."""
    blocks = block_grid(shape, block, halo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scores = []
    loc = inst.locations
    for b in blocks:
        c, e = b.core, b.ext
        own = (loc[:, 0] >= c[0]) & (loc[:, 0] < c[1]) & (loc[:, 1] >= c[2]) & (loc[:, 1] < c[3])
        sub = inst.select(own).shift(-e[0], -e[2])
        labels, kept = paste_instances(sub, (e[1] - e[0], e[3] - e[2]), fill_holes=False, **rules)
        save_block(scratch, b.index, labels, sub.scores[kept])
        scores.append(sub.scores[kept])
    store = tmp_path / "out.ome.zarr"
    table = stitch_blocks(None, blocks, scratch, store, shape, halo, scores, **rules)
    labels = zarr.open_group(str(store), mode="r")["labels/cells/0"][:]
    return labels, table, blocks


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_cells_on_every_kind_of_border_come_out_once_and_whole(tmp_path):
    shape, block, halo = (150, 170), 40, 64
    cells = []
    # on a vertical edge, a horizontal edge, a corner of four blocks, inside a block, on the image border
    for cy, cx in [(20, 40), (40, 20), (80, 80), (60, 60), (0, 100), (149, 169), (120, 41)]:
        cells.append(_disk(shape, cy, cx, 7))
    # long cells spanning 3+ blocks: a horizontal bar, a vertical bar, a diagonal band
    bar = np.zeros(shape, bool)
    bar[100:106, 20:130] = True
    cells.append(bar)
    vbar = np.zeros(shape, bool)
    vbar[10:125, 150:155] = True
    cells.append(vbar)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cells.append((np.abs(yy - xx + 0) <= 3) & (yy > 15) & (yy < 75) & ~np.any(cells, axis=0))
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.5, 1.0, len(cells))
    inst = _instances(list(zip(cells, scores)), window=128)
    labels, table, blocks = _stitch(tmp_path, inst, shape, block, halo, min_area=4)
    assert len(blocks) == 20
    expected, kept = paste_instances(inst, shape)
    assert len(kept) == len(cells)
    np.testing.assert_array_equal(labels, expected)  # same ids (by descending score), no cell cut or doubled
    assert len(table) == len(cells)
    np.testing.assert_allclose(table.area, np.bincount(expected.ravel())[1:])
    np.testing.assert_allclose(table.score, np.sort(scores)[::-1].astype(np.float32))
    cy = [np.nonzero(expected == k)[0].mean() for k in range(1, len(cells) + 1)]
    np.testing.assert_allclose(table.centroid_y, cy)


def test_overlapping_cells_of_neighbouring_blocks_are_resolved_by_score(tmp_path):
    shape, block, halo = (96, 96), 48, 32
    a = _disk(shape, 40, 44, 9)  # owned by block 0
    b = _disk(shape, 40, 54, 9)  # owned by block 1, overlaps a across the seam at x = 48
    c = _disk(shape, 60, 46, 6)  # block 2 (row below), mostly covered by d: dropped by the fragment rule
    d = _disk(shape, 61, 50, 8)  # block 3
    e = _disk(shape, 20, 47, 5)  # small cell, cut in two by a better thin bar across the seam
    bar = np.zeros(shape, bool)
    bar[10:30, 47:49] = True
    cells = [(a, 0.7), (b, 0.9), (c, 0.5), (d, 0.8), (e, 0.6), (bar, 0.95)]
    inst = _instances(cells, window=64)
    labels, table, _ = _stitch(tmp_path, inst, shape, block, halo, min_area=4)
    expected, kept = paste_instances(inst, shape, min_area=4)
    np.testing.assert_array_equal(labels, expected)
    assert 2 not in kept  # c dropped
    assert len(table) == len(kept) == 5
    for k in range(1, len(kept) + 1):  # every cell one 4-connected piece
        from scipy import ndimage as ndi

        assert ndi.label(labels == k)[1] == 1


def test_many_random_cells_match_the_single_image_paster(tmp_path):
    rng = np.random.default_rng(3)
    shape = (200, 230)
    cells = [
        (_disk(shape, *rng.uniform(0, 200, 1), *rng.uniform(0, 230, 1), rng.uniform(3, 9)), s)
        for s in rng.uniform(0.3, 1, 120)
    ]
    inst = _instances(cells, window=24)
    labels, table, _ = _stitch(tmp_path, inst, shape, 64, 24, min_area=6)
    expected, kept = paste_instances(inst, shape, min_area=6)
    n = int(expected.max())
    assert n > 50 and int(labels.max()) == n == len(table)
    # the greedy order of one image and the per-block decisions can only differ in chains of three or more
    # overlapping cells across a seam; on this crowded field they agree on almost every pixel
    assert np.mean(labels == expected) > 0.995


def test_block_results_survive_a_crash_and_are_not_redone(data_root, tmp_path, monkeypatch, check_ngff):
    """Pass 1 is kept per block: a rerun after a failure segments only the blocks missing."""
    from lociseg.data import load_dataset
    from lociseg.predict import api
    from lociseg.predict.outputs import outputs_complete
    from lociseg.scale_out import blocks as blocks_mod

    image = load_dataset("bbbc018@test", root=data_root)[5].image  # 512 x 512: 2 x 2 tiles of 512 at model scale
    seg = api.load_model("cells", device="cpu")
    calls: list[tuple] = []
    fail_at = {"n": 3}

    class Counting:
        def __getattr__(self, name):
            return getattr(seg, name)

        def paste_tiles(self, *args, **kwargs):
            calls.append(kwargs["region"])
            if len(calls) == fail_at["n"]:
                raise RuntimeError("worker lost")
            return seg.paste_tiles(*args, **kwargs)

    monkeypatch.setattr(blocks_mod, "cached_segmenter", lambda model, device: Counting())
    kw = dict(model="cells", device="cpu", diameter=23.0, block_size=256, tile_size=512)
    with pytest.raises(RuntimeError, match="worker lost"):
        blocks_mod.segment_blocks(None, image, tmp_path, "field", **kw)
    assert len(list((tmp_path / ".field.blocks").glob("*.scores.npy"))) == 2
    calls.clear()
    fail_at["n"] = 0
    # the channels stored in the file's order with their names: selected by name, stored in the model's order
    blocks_mod.segment_blocks(None, image[::-1], tmp_path, "field", channel_names=["DNA", "actin"], **kw)
    assert len(calls) == 2  # only the two blocks the first run did not finish
    attrs = check_ngff(tmp_path / "field.ome.zarr")  # NGFF 0.4: omero colour and window, as napari needs
    assert attrs["multiscales"][0]["name"] == "field"
    assert [c["label"] for c in attrs["omero"]["channels"]] == ["actin", "DNA"]
    sidecar = json.loads((tmp_path / "field.lociseg.json").read_text())
    assert 0 < sidecar["high_score_fraction"] <= 1
    assert outputs_complete(tmp_path, "field", endings=(".ome.zarr", ".csv"))
    assert not (tmp_path / ".field.blocks").exists()
    ref, _ = seg.segment(image, diameter=23.0, tile_size=512)
    labels = zarr.open_group(str(tmp_path / "field.ome.zarr"), mode="r")["labels/cells/0"][:]
    from lociseg.metrics import match_instances

    m = match_instances(ref, labels, thresholds=[0.9])
    assert m.tp[0] >= 0.99 * int(ref.max())

"""Streaming paste (tile by tile) against the paste of all instances at the end."""

import numpy as np
import pytest

from lociseg.predict import paste_instances
from lociseg.predict.paste import StreamingPaste, paste_window
from lociseg.predict.tiling import iter_tiles
from lociseg.structures import Instances


def _soft_disc(win, cy, cx, r):
    yy, xx = np.mgrid[:win, :win]
    return np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1).astype(np.float32)


def _field(rng, shape, n, win=24):
    """Random soft discs (overlapping, some duplicated) with random scores, in image coordinates."""
    loc = rng.uniform(0, shape, (n, 2))
    # near-duplicates: a second detection of some cells, as two tiles give at a seam
    dup = loc[: n // 6] + rng.normal(0, 1.5, (n // 6, 2))
    loc = np.concatenate([loc, dup])
    masks = np.stack(
        [_soft_disc(win, win / 2 + rng.uniform(-2, 2), win / 2 + rng.uniform(-2, 2), rng.uniform(4, 8)) for _ in loc]
    )
    origins = np.floor(loc).astype(np.int64) - win // 2
    scores = rng.uniform(0.3, 1, len(loc)).astype(np.float32)
    return Instances(loc.astype(np.float32), scores, masks, origins)


def _by_tile(inst, shape, tile, overlap):
    """The instances each tile keeps (location in its core), in tile order."""
    for t in iter_tiles(shape, tile, overlap):
        cy0, cy1, cx0, cx1 = t.core
        y, x = inst.locations[:, 0], inst.locations[:, 1]
        keep = (y >= cy0) & (y < cy1) & (x >= cx0) & (x < cx1)
        yield inst.select(keep)


def _match(a, b):
    """Fraction of the cells of ``a`` whose best match in ``b`` has IoU > 0.9."""
    n = int(a.max())
    hits = 0
    for k in range(1, n + 1):
        m = a == k
        other = b[m]
        if not other.any():
            continue
        j = np.bincount(other[other > 0]).argmax()
        mb = b == j
        hits += (m & mb).sum() / (m | mb).sum() > 0.9
    return hits / max(n, 1)


@pytest.mark.parametrize("overlaps", ["score", "probability"])
def test_streaming_matches_paste_at_the_end(overlaps):
    rng = np.random.default_rng(3)
    shape = (300, 340)
    inst = _field(rng, shape, 260)
    ref, kept = paste_instances(inst, shape, overlaps=overlaps)
    paster = StreamingPaste(shape, overlaps=overlaps)
    for part in _by_tile(inst, shape, 96, 40):
        paster.add(part)
    labels, scores = paster.finish()
    assert labels.dtype == ref.dtype
    n = int(labels.max())
    assert np.array_equal(np.unique(labels), np.arange(n + 1))  # ids 1..N, no gaps
    assert len(scores) == n and np.all(np.diff(scores) <= 0)  # ids by descending score
    assert abs(n - int(ref.max())) <= 0.01 * n
    assert _match(ref, labels) >= 0.98 and _match(labels, ref) >= 0.98
    # every cell one 4-connected piece (no cell cut at a seam)
    from scipy import ndimage as ndi

    for k, box in enumerate(ndi.find_objects(labels), start=1):
        assert ndi.label(labels[box] == k)[1] == 1


def test_streaming_is_exact_without_conflicts_across_tiles():
    rng = np.random.default_rng(0)
    shape = (200, 200)
    inst = _field(rng, shape, 120)
    ref, kept = paste_instances(inst, shape)
    paster = StreamingPaste(shape)
    paster.add(inst)  # one tile: the same rules in the same order
    labels, scores = paster.finish()
    assert np.array_equal(labels, ref)
    assert np.array_equal(scores, inst.scores[kept])


def test_better_cell_from_a_later_tile_takes_pixels_and_removes_a_covered_one():
    win = 24
    disc = _soft_disc(win, 12, 12, 7)
    first = Instances(
        np.array([[12, 12]], np.float32), np.array([0.5], np.float32), disc[None], np.zeros((1, 2), np.int64)
    )
    # a better detection of the same cell, one pixel off: the first is then a covered duplicate
    second = first.shift(1, 1)
    second.scores = np.array([0.9], np.float32)
    # a worse neighbour overlapping the first cell's edge only takes free pixels
    third = first.shift(0, 10)
    third.scores = np.array([0.2], np.float32)
    paster = StreamingPaste((40, 50))
    for part in (first, second, third):
        paster.add(part)
    labels, scores = paster.finish()
    ref, kept = paste_instances(Instances.concatenate([first, second, third]), (40, 50))
    assert np.array_equal(labels, ref)
    assert list(scores) == [pytest.approx(0.9), pytest.approx(0.2)]


def test_paste_window_is_pure_and_reports_its_cells():
    win = 16
    disc = _soft_disc(win, 8, 8, 5)
    inst = Instances(
        np.array([[8, 8], [8, 30]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.stack([disc, disc]),
        np.array([[0, 0], [0, 22]]),
    )
    labels = np.zeros((20, 40), np.int32)
    res = paste_window(inst, labels, np.zeros(5, np.float32), np.zeros(5, np.int64))
    assert not labels.any()  # input untouched
    assert list(res.ids) == [5, 6] and res.next_id == 7
    for k, (y0, y1, x0, x1) in zip(res.ids, res.boxes):
        ys, xs = np.nonzero(res.labels == k)
        assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (y0, y1, x0, x1)
        assert res.own[list(res.ids).index(k)] == (disc > 0.5).sum()
    assert len(res.dropped) == 0


@pytest.mark.parametrize("overlaps", ["score", "probability"])
def test_a_tile_pasted_best_first_in_chunks_equals_pasted_at_once(overlaps):
    rng = np.random.default_rng(5)
    shape = (200, 220)
    inst = _field(rng, shape, 150)
    results = []
    for chunk in (len(inst), 7):
        paster = StreamingPaste(shape, overlaps=overlaps)
        for part in _by_tile(inst, shape, 96, 40):
            order = np.argsort(-part.scores.astype(np.float64), kind="stable")
            for a in range(0, len(order), chunk):
                paster.add(part.select(order[a : a + chunk]))
        results.append(paster.finish())
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("overlaps", ["score", "probability"])
def test_running_out_of_ids_renumbers_then_widens_without_changing_the_result(overlaps):
    # uint8 ids run out after 255 pastes: the live cells are renumbered, then the image widened
    rng = np.random.default_rng(3)
    shape = (300, 340)
    inst = _field(rng, shape, 260)
    out = []
    for dtype in (np.uint16, np.uint8):
        paster = StreamingPaste(shape, overlaps=overlaps, dtype=dtype)
        widths = set()
        for part in _by_tile(inst, shape, 96, 40):
            paster.add(part)
            widths.add(paster.labels.dtype)
        out.append(paster.finish())
    assert widths == {np.dtype(np.uint8), np.dtype(np.uint32)}
    assert out[0][0].dtype == out[1][0].dtype == np.uint16
    assert np.array_equal(out[0][0], out[1][0])
    assert np.array_equal(out[0][1], out[1][1])


def test_finish_returns_the_pasted_image_itself_when_its_dtype_fits():
    rng = np.random.default_rng(1)
    inst = _field(rng, (120, 120), 40)
    paster = StreamingPaste((120, 120))
    paster.add(inst)
    canvas = paster.labels
    labels, _ = paster.finish()
    assert labels is canvas and labels.dtype == np.uint16  # no copy of a large image at the end

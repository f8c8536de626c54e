"""Label image I/O and the outline / per-object-mask converters."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.segmentation import find_boundaries

from lociseg.errors import InputError
from lociseg.io import (
    fill_outline_pixels,
    masks_to_labels,
    outlines_to_labels,
    read_labels,
    relabel_sequential,
    write_labels,
)


def _touching_squares() -> np.ndarray:
    labels = np.zeros((40, 60), np.int32)
    labels[5:20, 5:25] = 1
    labels[5:20, 25:45] = 2  # shares an edge with 1
    labels[25:35, 10:30] = 3
    return labels


def test_write_read_round_trip_compressed(tmp_path):
    labels = _touching_squares()
    p = write_labels(tmp_path / "l.tif", labels)
    with tifffile.TiffFile(p) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    np.testing.assert_array_equal(read_labels(p), labels)


def test_label_dtype_switches_above_65535(tmp_path):
    labels = np.arange(70000, dtype=np.int64).reshape(280, 250)
    p = write_labels(tmp_path / "many.tif", labels)
    assert tifffile.imread(p).dtype == np.uint32
    np.testing.assert_array_equal(read_labels(p), labels)
    small = write_labels(tmp_path / "few.tif", np.full((3, 3), 65535))
    assert tifffile.imread(small).dtype == np.uint16


def test_ome_labels(tmp_path):
    p = write_labels(tmp_path / "l.ome.tif", _touching_squares())
    with tifffile.TiffFile(p) as tif:
        assert tif.is_ome
    np.testing.assert_array_equal(read_labels(p), _touching_squares())


def test_write_rejects_bad_labels(tmp_path):
    with pytest.raises(InputError, match="2-D"):
        write_labels(tmp_path / "x.tif", np.zeros((2, 3, 3), int))
    with pytest.raises(InputError, match="negative"):
        write_labels(tmp_path / "x.tif", -np.ones((3, 3), int))
    with pytest.raises(InputError, match="integers"):
        write_labels(tmp_path / "x.tif", np.full((3, 3), 0.5))


def test_read_labels_text_and_colour_png(tmp_path):
    labels = _touching_squares()
    np.savetxt(tmp_path / "l.txt.gz", labels, fmt="%d")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.txt.gz"), labels)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [10, 20, 30]], np.uint8)
    Image.fromarray(palette[labels]).save(tmp_path / "colour.png")
    back = read_labels(tmp_path / "colour.png")
    # each colour is one object; ids may differ but the partition must match
    assert back.max() == 3
    for k in range(1, 4):
        assert len(np.unique(back[labels == k])) == 1
    np.testing.assert_array_equal(back == 0, labels == 0)


def test_read_labels_rejects_float_and_multichannel(tmp_path):
    np.save(tmp_path / "f.npy", np.full((4, 4), 1.5, np.float32))
    with pytest.raises(InputError, match="non-integer"):
        read_labels(tmp_path / "f.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(InputError, match="2 planes"):
        read_labels(tmp_path / "c.npy")


def test_relabel_sequential():
    out = relabel_sequential(np.array([[0, 7, 7], [3, 0, 100]]))
    np.testing.assert_array_equal(out, [[0, 2, 2], [1, 0, 3]])
    assert relabel_sequential(np.array([[4, 4]])).tolist() == [[1, 1]]
    assert relabel_sequential(np.array([[0, 1 << 40]], np.int64)).tolist() == [[0, 1]]
    assert relabel_sequential(np.array([[0, 5]], np.uint16)).dtype == np.int32
    assert relabel_sequential(np.zeros((0, 3), np.int64)).shape == (0, 3)


def test_fill_outline_pixels_gives_nearby_line_pixels_the_nearest_label():
    labels = np.zeros((1, 9), np.int32)
    labels[0, 0], labels[0, 8] = 1, 2
    line = np.ones((1, 9), bool)
    line[0, 4] = False
    # distance <= 2 from a label: x = 1, 2 -> 1 and x = 6, 7 -> 2; x = 3, 5 too far; x = 4 not a line pixel
    assert fill_outline_pixels(labels, line).tolist() == [[1, 1, 1, 0, 0, 0, 2, 2, 2]]
    assert fill_outline_pixels(labels, line, max_distance=3).tolist() == [[1, 1, 1, 1, 0, 2, 2, 2, 2]]
    assert fill_outline_pixels(np.zeros((2, 2), np.uint16), np.ones((2, 2), bool)).dtype == np.int32


def test_masks_to_labels_from_folder_and_arrays(tmp_path):
    labels = _touching_squares()
    for k in range(1, 4):
        Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(tmp_path / f"m{k}.png")
    Image.fromarray(np.zeros_like(labels, np.uint8)).save(tmp_path / "m9_empty.png")
    np.testing.assert_array_equal(masks_to_labels(tmp_path), labels)
    np.testing.assert_array_equal(
        masks_to_labels([labels == 2, labels == 1]), np.where(labels == 1, 2, labels == 2).astype(int)
    )
    with pytest.warns(UserWarning, match="more than one mask"):
        masks_to_labels([labels > 0, labels == 1])
    with pytest.raises(InputError, match="differs"):
        masks_to_labels([np.ones((3, 3)), np.ones((4, 4))])


def test_outlines_to_labels_recovers_touching_objects():
    labels = _touching_squares()
    # 1-pixel outlines drawn on the objects' own border pixels
    outline = find_boundaries(labels, mode="inner")
    filled = outlines_to_labels(outline, min_size=5)
    assert filled.max() == 3
    # outline pixels are given back to their objects: near-exact recovery
    for k in range(1, 4):
        ids, counts = np.unique(filled[labels == k], return_counts=True)
        top = ids[np.argmax(counts)]
        iou = np.sum((filled == top) & (labels == k)) / np.sum((filled == top) | (labels == k))
        assert iou > 0.9
    # neighbours 1 and 2 touch (no background gap between them)
    assert (filled[5:20, 24] > 0).all() and (filled[5:20, 25] > 0).all()


def test_outlines_small_gaps_dropped():
    outline = np.zeros((30, 30), bool)
    outline[5, 5:25] = outline[24, 5:25] = outline[5:25, 5] = outline[5:25, 24] = True
    outline[10:13, 10] = outline[10:13, 12] = outline[10, 10:13] = outline[12, 10:13] = True  # encloses 1 px
    filled = outlines_to_labels(outline, min_size=15)
    assert filled.max() == 1

"""Kaggle RLE and COCO (polygon, RLE) conversions, checked on real DSB2018 data."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.io import (
    coco_rle_decode,
    coco_rle_encode,
    coco_to_labels,
    labels_to_coco,
    masks_to_labels,
    read_rle_csv,
    rle_decode,
    rle_encode,
)

DSB_ID = "0114f484a16c152baa2d82fdd43740880a762c93f436c8988ac461c5c9dbe7d5"


def test_rle_known_values():
    mask = np.zeros((3, 4), bool)
    mask[1:3, 0] = True  # column-major pixels 2, 3 (1-based)
    mask[0, 2] = True  # pixel 7
    assert rle_encode(mask) == "2 2 7 1"
    np.testing.assert_array_equal(rle_decode("2 2 7 1", (3, 4)), mask)
    assert rle_encode(np.zeros((2, 2))) == ""
    assert not rle_decode("", (2, 2)).any()
    with pytest.raises(ValueError):
        rle_decode("1 2 3", (2, 2))
    with pytest.raises(ValueError):
        rle_decode("4 5", (2, 2))


def test_rle_round_trip_random(rng):
    mask = rng.random((37, 23)) > 0.6
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_rle_csv_equals_mask_folder(data_root):
    folder = data_root / "dsb2018_stage1_test/stage1_test" / DSB_ID / "masks"
    from_pngs = masks_to_labels(folder)
    from_csv = read_rle_csv(data_root / "dsb2018_stage1_test/stage1_solution.csv")
    assert len(from_csv) == 65
    labels = from_csv[DSB_ID]
    assert labels.max() == from_pngs.max() == 7
    # same objects, possibly in another order
    for k in range(1, from_pngs.max() + 1):
        ids = np.unique(labels[from_pngs == k])
        assert len(ids) == 1 and ids[0] > 0
        assert np.array_equal(labels == ids[0], from_pngs == k)
    # and our encoder reproduces the CSV's strings for this image
    import csv

    rows = [
        r
        for r in csv.DictReader((data_root / "dsb2018_stage1_test/stage1_solution.csv").read_text().splitlines())
        if r["ImageId"] == DSB_ID
    ]
    ours = {rle_encode(from_pngs == k) for k in range(1, 8)}
    assert ours == {r["EncodedPixels"].strip() for r in rows}


@pytest.mark.parametrize("compressed", [False, True])
def test_coco_rle_round_trip(rng, compressed):
    for _ in range(5):
        mask = rng.random((31, 17)) > 0.5
        rle = coco_rle_encode(mask, compressed=compressed)
        assert isinstance(rle["counts"], str if compressed else list)
        np.testing.assert_array_equal(coco_rle_decode(rle), mask)
    full = np.ones((4, 5), bool)
    assert coco_rle_encode(full, compressed=False)["counts"] == [0, 20]
    np.testing.assert_array_equal(coco_rle_decode(coco_rle_encode(full)), full)


def test_coco_compressed_matches_reference_string():
    # reference string produced by pycocotools 2.0.11 ``mask.encode`` for this mask
    mask = np.zeros((7, 9), bool)
    mask[1:4, 2:6] = True
    mask[5, :] = True
    mask[0, 8] = True
    ref = "5160L2ON12ON12ON12ON5000K030M"
    assert coco_rle_encode(mask)["counts"] == ref
    np.testing.assert_array_equal(coco_rle_decode({"size": [7, 9], "counts": ref}), mask)
    np.testing.assert_array_equal(coco_rle_decode({"size": [7, 9], "counts": ref.encode()}), mask)


def test_coco_uncompressed_known_counts_and_bad_counts():
    mask = np.zeros((3, 3), bool)
    mask[0, 1:] = mask[1:, 1] = True  # column-major: 0 0 0 | 1 1 1 | 1 0 0
    assert coco_rle_encode(mask, compressed=False) == {"size": [3, 3], "counts": [3, 4, 2]}
    for bad in ([3, 4], [3, 4, 3], [-1, 10]):
        with pytest.raises(ValueError, match="sum to"):
            coco_rle_decode({"size": [3, 3], "counts": bad})


def test_coco_compressed_string_must_cover_the_image():
    from pycocotools import mask as mask_api

    short = mask_api.frPyObjects({"size": [3, 3], "counts": [3, 4]}, 3, 3)["counts"]  # 7 of 9 pixels
    long = mask_api.frPyObjects({"size": [3, 3], "counts": [3, 4, 5]}, 3, 3)["counts"]
    for counts in (short, long):
        with pytest.raises(ValueError, match="3x3"):
            coco_rle_decode({"size": [3, 3], "counts": counts})


def test_coco_polygons_rasterise_exactly_here_and_in_pycocotools(data_root):
    from pycocotools import mask as mask_api

    from lociseg.io import mask_to_polygons

    labels = masks_to_labels(data_root / "dsb2018_stage1_test/stage1_test" / DSB_ID / "masks")
    h, w = labels.shape
    coco = labels_to_coco({"a.png": labels})
    np.testing.assert_array_equal(coco_to_labels(coco, 1), labels)  # hole-free cells: exact
    for ann in coco["annotations"]:
        rle = mask_api.merge(mask_api.frPyObjects(ann["segmentation"], h, w))
        np.testing.assert_array_equal(mask_api.decode(rle) > 0, labels == ann["id"])
    # pixel-edge corners at half-integers (pixel centres are integers), no cut corners
    square = np.zeros((5, 6), bool)
    square[1:3, 2:5] = True
    assert mask_to_polygons(square) == [[1.5, 0.5, 4.5, 0.5, 4.5, 2.5, 1.5, 2.5]]


@pytest.mark.parametrize("encoding", ["polygon", "rle", "rle-uncompressed"])
def test_coco_round_trip_preserves_instances(data_root, encoding):
    labels = masks_to_labels(data_root / "dsb2018_stage1_test/stage1_test" / DSB_ID / "masks")
    coco = labels_to_coco({"a.png": labels, "b.png": labels[::-1].copy()}, encoding=encoding)
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2 * labels.max()
    for image_id, ref in ((1, labels), ("b.png", labels[::-1])):
        back = coco_to_labels(coco, image_id)
        assert back.max() == ref.max()
        for k in range(1, ref.max() + 1):
            ids, counts = np.unique(back[ref == k], return_counts=True)
            top = ids[np.argmax(counts)]
            iou = np.sum((back == top) & (ref == k)) / np.sum((back == top) | (ref == k))
            # RLE is exact; polygons along pixel edges are exact for hole-free objects
            assert iou > (0.999 if encoding != "polygon" else 0.97)


def test_coco_polygon_of_shape_with_hole_and_two_parts():
    labels = np.zeros((20, 20), np.int32)
    labels[2:12, 2:12] = 1
    labels[5:8, 5:8] = 0  # hole (lost in polygons, kept by RLE)
    labels[15:18, 2:5] = 2
    poly = coco_to_labels(labels_to_coco({"x": labels}), 1)
    assert poly.max() == 2
    np.testing.assert_array_equal(poly == 2, labels == 2)
    assert (poly == 1).sum() == 100
    exact = coco_to_labels(labels_to_coco({"x": labels}, encoding="rle"), 1)
    np.testing.assert_array_equal(exact, labels)

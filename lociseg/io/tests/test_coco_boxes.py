"""COCO export computes each object's mask in its bounding box only; the output is the whole-image encoding."""

import numpy as np
import pytest

from lociseg.io.coco import coco_rle_decode, coco_rle_encode, labels_to_coco


def test_box_encoding_equals_whole_mask_encoding():
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = rng.integers(1, 12, 2)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.random()
        for compressed in (False, True):
            whole = coco_rle_encode(mask, compressed=compressed)
            box = coco_rle_encode(mask[y0:y1, x0:x1], compressed=compressed, shape=(h, w), offset=(y0, x0))
            assert box == whole
        assert np.array_equal(coco_rle_decode(box), mask)


@pytest.mark.parametrize("encoding", ["rle", "rle-uncompressed", "polygon"])
def test_labels_to_coco_matches_whole_image_masks(encoding):
    rng = np.random.default_rng(1)
    labels = np.zeros((60, 70), np.int32)
    for k in range(1, 16):
        y, x = rng.integers(0, 55), rng.integers(0, 65)
        labels[y : y + rng.integers(2, 15), x : x + rng.integers(2, 15)] = k
    labels[0, :] = 16  # an object across the whole first row (runs joined across columns)
    labels[:, -1] = 17  # and down the whole last column
    coco = labels_to_coco({"a": labels}, encoding=encoding)
    ids = [k for k in range(1, 18) if (labels == k).any()]
    assert len(coco["annotations"]) == len(ids)
    for ann, k in zip(coco["annotations"], ids):
        mask = labels == k
        assert ann["area"] == mask.sum()
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        if encoding != "polygon":
            assert ann["segmentation"] == coco_rle_encode(mask, compressed=encoding == "rle")

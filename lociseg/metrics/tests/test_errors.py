"""mask_errors on hand-made label images whose error pixels are counted by hand."""

import numpy as np
import pytest

from lociseg.metrics import mask_errors, match_instances


def test_border_and_edge_errors_by_hand():
    gt = np.zeros((10, 20), int)
    gt[2:8, 2:8] = 5  # two touching 6x6 cells ...
    gt[2:8, 8:14] = 9
    gt[2:6, 16:20] = 3  # ... and an isolated 4x4 one
    pred = np.zeros_like(gt)
    pred[2:8, 2:9] = 1  # border one column into cell 9
    pred[2:8, 9:14] = 2
    pred[1:6, 16:20] = 7  # one row spilled onto background
    pred[5, 16:20] = 0  # and the last row missed
    e = mask_errors(gt, pred)
    assert (e["n_gt"], e["n_pred"], e["n_matched"]) == (3, 3, 3)
    assert e["extra_cell"] == 6 and e["miss_cell"] == 6  # the border column, seen from both cells
    assert e["extra_bg"] == 4 and e["miss_bg"] == 4
    assert e["matched_area"] == 36 + 36 + 16
    assert e["touching"].tolist() == [False, True, True]  # GT order 3, 5, 9
    assert e["iou"] == pytest.approx([12 / 20, 36 / 42, 30 / 36])


def test_unmatched_objects_do_not_count_and_threshold_is_checked():
    gt = np.zeros((6, 6), int)
    gt[:3, :3] = 1
    pred = np.zeros_like(gt)
    pred[:3, 2:6] = 4  # IoU 3/15: no match
    e = mask_errors(gt, pred)
    assert e["n_matched"] == 0 and e["matched_area"] == 0
    assert e["extra_cell"] == e["extra_bg"] == e["miss_cell"] == e["miss_bg"] == 0
    with pytest.raises(ValueError, match="0.5"):
        mask_errors(gt, pred, iou_threshold=0.3)


def test_error_kinds_by_hand():
    from lociseg.metrics import ERROR_KINDS, error_kinds

    gt = np.zeros((10, 40), int)
    gt[0:6, 0:6] = 1  # matched exactly
    gt[0:6, 8:14] = 2  # two thirds predicted (matched), the last third a fragment
    gt[0:6, 16:22] = 3  # one prediction over 3 and 4 (and a column of background): a merge
    gt[0:6, 22:28] = 4
    gt[0:6, 30:36] = 5  # missed
    pred = np.zeros_like(gt)
    pred[0:6, 0:6] = 1
    pred[0:6, 8:12] = 2
    pred[0:6, 12:14] = 3
    pred[0:6, 16:29] = 4  # IoU 36/78 with each
    pred[8:10, 30:40] = 5  # on background, beside the missed cell
    k = error_kinds(gt, pred)
    assert (k["matched"], k["poor"], k["missed"]) == (2, 2, 1)
    assert (k["fp_fragment"], k["fp_merge"], k["fp_background"], k["fp_other"]) == (1, 1, 1, 0)
    assert k["gt_kind"].tolist() == ["matched", "matched", "poor", "poor", "missed"]
    # the matched cells agree with the one-to-one matching
    assert k["matched"] == match_instances(gt, pred, thresholds=[0.5]).tp
    assert set(ERROR_KINDS) <= set(k)
    # a small prediction spread thinly over two cells (no cell holds > share of it) is "other"
    pred[:] = 0
    pred[0:6, 0:6] = 1
    pred[5, 2:12] = 2  # 4 px in cell 1, 6 px in cell 2 ... share 0.6 of it in cell 2
    k = error_kinds(gt, pred, share=0.7)
    assert (k["fp_other"], k["fp_fragment"]) == (1, 0)
    # empty images: every count 0, or every GT cell missed
    empty = error_kinds(np.zeros_like(gt), np.zeros_like(gt))
    assert all(empty[key] == 0 for key in ERROR_KINDS) and empty["gt_kind"].size == 0
    k = error_kinds(gt, np.zeros_like(gt))
    assert k["missed"] == 5 and k["matched"] == k["fp_background"] == 0

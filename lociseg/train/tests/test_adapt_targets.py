"""``lociseg adapt --targets auto``: whose cells lead an image's targets."""

from __future__ import annotations

import numpy as np

from lociseg.train.adapt import AGREEMENT_MIN, agreement, choose_lead


def _grid(n: int, shift: int = 0) -> np.ndarray:
    """``n`` x ``n`` square cells of 10 px on a 12 px pitch, moved ``shift`` px to the right."""
    lab = np.zeros((12 * n + 20, 12 * n + 20), np.int32)
    for k in range(n * n):
        y, x = 12 * (k // n) + 2, 12 * (k % n) + 2 + shift
        lab[y : y + 10, x : x + 10] = k + 1
    return lab


def test_agreement_is_f1_at_iou_half():
    a = _grid(4)
    assert agreement(a, a) == 1.0
    assert agreement(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert agreement(a, np.zeros_like(a)) == 0.0
    # a 3 px shift keeps IoU 7/13 > 0.5 for every cell, a 6 px shift drops it to 4/16
    assert agreement(a, _grid(4, shift=3)) == 1.0
    assert agreement(a, _grid(4, shift=6)) == 0.0
    # half the cells missing: F1 = 2 * 8 / (16 + 8)
    half = np.where(a > 8, 0, a)
    assert np.isclose(agreement(a, half), 16 / 24)


def test_choose_lead_trusts_the_model_only_where_it_agrees_with_the_annotation():
    machine = _grid(4)
    assert choose_lead(machine.copy(), machine) == ("model+machine", 1.0)
    lead, agree = choose_lead(_grid(4, shift=6), machine)
    assert lead == "machine+model" and agree < AGREEMENT_MIN
    few = np.where(machine > 3, 0, machine)  # the model finds 3 of the 16 cells
    lead, agree = choose_lead(few, machine)
    assert lead == "machine+model" and np.isclose(agree, 6 / 19)


def test_flipped_view_finds_the_same_cells_on_a_real_field(data_root):
    """The stability view of ``--targets evidence``: the model on the flipped field, mapped back."""
    from lociseg.data import load_dataset
    from lociseg.predict.api import load_model
    from lociseg.predict.selftrain import cells_from_model, flipped_view

    image = load_dataset("bbbc018@test", root=data_root, channels=["actin", "DNA"])[0].image[:, :512, :512]
    seg = load_model("cells", device="cpu")
    own, used = cells_from_model(image, seg, channels=[0, 1], diameter=23.0, augment=False)
    view = flipped_view(image, seg, [0, 1], used)
    assert view.shape == own.shape and own.max() >= 10
    # mapped back into the field's frame: most cells are found again at IoU 0.5 (0.80 measured)
    assert agreement(own, view) >= 0.7
    # not mapped back, the same cells would not line up
    assert agreement(own, np.ascontiguousarray(view[::-1, ::-1])) < 0.5

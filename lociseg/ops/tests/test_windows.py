"""Window ops against hand-computed crops."""

import numpy as np
import torch
import torch.nn.functional as F

from lociseg.ops.windows import clip_window, gather_windows, paste_soft


def test_gather_windows_by_hand():
    a = torch.arange(16).reshape(4, 4)
    win, inside = gather_windows(a, torch.tensor([[-1, 2]]), (3, 3))
    assert win[0].tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]
    assert inside.sum() == 4


def test_gather_windows_keeps_leading_dims_like_a_zero_padded_crop():
    torch.manual_seed(0)
    feat = torch.randn(5, 7, 9)
    origins = torch.tensor([[-3, -2], [2, 4], [5, 7], [-10, 0]])
    w = 4
    vals, inside = gather_windows(feat, origins, (w, w))
    assert vals.shape == (5, 4, w, w) and inside.shape == (4, w, w)
    padded = F.pad(feat, (w, w, w, w))
    for k, (oy, ox) in enumerate(origins.tolist()):
        ref = padded[:, oy + w : oy + 2 * w, ox + w : ox + 2 * w] if oy + w >= 0 else torch.zeros(5, w, w)
        assert torch.equal(vals[:, k], ref), k


def test_paste_soft_inverts_gather_on_disjoint_windows():
    masks = torch.rand(2, 3, 3)
    origins = torch.tensor([[-1, -1], [4, 5]])
    canvas = paste_soft(masks, origins, (6, 7))
    back, inside = gather_windows(canvas, origins, (3, 3))
    assert torch.allclose(back, masks * inside)
    assert torch.isclose(canvas.sum(), (masks * inside).sum())


def test_clip_window():
    assert clip_window((-1, 2), (3, 3), (4, 4)) == ((slice(0, 2), slice(2, 4)), (slice(1, 3), slice(0, 2)))
    assert clip_window((1, 1), (2, 2), (4, 4)) == ((slice(1, 3), slice(1, 3)), (slice(0, 2), slice(0, 2)))
    assert clip_window((4, 0), (2, 2), (4, 4)) is None
    assert clip_window(np.array([0, -2]), (3, 2), (4, 4)) is None

import numpy as np
import pytest
import torch

from lociseg.models import LacssConfig, LacssModel
from lociseg.models.flips import FLIPS, flip_views, mean_unflipped, unflip
from lociseg.models.unet import UNetConfig, UNetModel


def test_views_round_trip():
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    views = flip_views(x)
    assert views.shape == (4, 2, 3, 4)
    assert torch.equal(views[1], x[0].flip(-1)) and torch.equal(views[3], x[0].flip((-2, -1)))
    for k in range(len(FLIPS)):
        assert torch.equal(unflip(views[k], k), x[0])
    assert torch.equal(mean_unflipped(views), x[0])
    with pytest.raises(ValueError):
        flip_views(torch.zeros(2, 1, 3, 3))


def _random_lacss() -> LacssModel:
    torch.manual_seed(0)
    model = LacssModel(LacssConfig()).eval()
    with torch.no_grad():
        model.lpn.score.bias.fill_(2.0)  # detections from an untrained net
        torch.nn.init.normal_(model.lpn.score.weight, std=0.5)  # well-separated peaks, no near-ties
        torch.nn.init.normal_(model.lpn.offset.weight, std=0.05)
        model.seghead.embedding.normal_(std=1.0)  # an orientation-dependent mask prior
    return model


def _mirror_gap(
    model: LacssModel, x: torch.Tensor, dims: tuple[int, ...], augment: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean |mask difference| between the predictions of x and of its flip (mapped back), over shared window pixels.

    Also returns both location sets (x's mirrored), matched by sorting.
    """
    a = model.predict_instances(x, augment=augment)
    b = model.predict_instances(x.flip(dims), augment=augment)
    h, w = x.shape[-2:]
    size = a.masks.shape[-1]
    loc_b, org_b, masks_b = b.locations.copy(), b.origins.copy(), b.masks.copy()
    # map b back into x's frame: mirror locations, windows and masks
    for axis, extent in ((-2, h), (-1, w)):
        if axis in dims:
            i = axis + 2
            loc_b[:, i] = extent - 1 - loc_b[:, i]
            org_b[:, i] = extent - org_b[:, i] - size
            masks_b = np.flip(masks_b, axis=axis)
    oa = np.lexsort((a.locations[:, 1], a.locations[:, 0]))
    ob = np.lexsort((loc_b[:, 1], loc_b[:, 0]))
    if len(oa) != len(ob):
        return np.inf, a.locations[oa], loc_b[ob]
    gaps = []
    for i, j in zip(oa, ob):
        lo = np.maximum(a.origins[i], org_b[j])
        hi = np.minimum(a.origins[i], org_b[j]) + size
        pa = a.masks[i][
            lo[0] - a.origins[i][0] : hi[0] - a.origins[i][0], lo[1] - a.origins[i][1] : hi[1] - a.origins[i][1]
        ]
        pb = masks_b[j][lo[0] - org_b[j][0] : hi[0] - org_b[j][0], lo[1] - org_b[j][1] : hi[1] - org_b[j][1]]
        gaps.append(np.abs(pa - pb).mean())
    return float(np.mean(gaps)), a.locations[oa], loc_b[ob]


@pytest.mark.parametrize("dims", [(-1,), (-2,), (-2, -1)])
def test_lacss_flip_averaging_is_flip_equivariant(dims):
    model = _random_lacss()
    x = torch.randn(1, 2, 64, 96)
    with torch.no_grad():
        s, o, _ = model._dense_outputs(x, True)
        s2, o2, _ = model._dense_outputs(x.flip(dims), True)
    # the averaged LPN maps are exactly equivariant (offsets change sign along flipped axes)
    torch.testing.assert_close(s.flip(dims), s2, atol=1e-4, rtol=0)
    for c, axis in ((0, -2), (1, -1)):
        sign = -1.0 if axis in dims else 1.0
        torch.testing.assert_close(o[c].flip(dims) * sign, o2[c], atol=1e-5, rtol=0)
    gap, la, lb = _mirror_gap(model, x, dims, augment=True)
    assert len(la) > 3
    np.testing.assert_allclose(la, lb, atol=1e-3)
    # masks too: each pixel averages the views' windows that cover it, whichever side of the
    # location each view's window was centred on
    assert gap < 1e-5, gap


def test_unet_flip_averaging_is_flip_equivariant():
    torch.manual_seed(0)
    model = UNetModel(UNetConfig(base_channels=8, depth=2)).eval()
    x = torch.randn(1, 2, 32, 48)
    with torch.no_grad():
        p = model.predict_probabilities(x, augment=True)
        q = model.predict_probabilities(x.flip(-1), augment=True)
        plain = model.predict_probabilities(x)
    np.testing.assert_allclose(np.flip(p, axis=2), q, atol=1e-5)
    assert p.shape == plain.shape == (3, 32, 48) and not np.allclose(p, plain, atol=1e-4)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)

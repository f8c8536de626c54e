"""Weak losses on hand-made masks whose values are computed by hand."""

import math

import numpy as np
import pytest
import torch

from lociseg.losses.territory import territory_loss, territory_map
from lociseg.losses.weak import (
    DEFAULT_SPACING,
    background_from_points,
    lacss_weak_loss,
    points_mode_loss,
    size_loss,
)
from lociseg.losses.weak_combined import warmup_weight
from lociseg.ops.windows import paste_soft
from lociseg.transforms import point_spacing

LN2 = math.log(2.0)


def _half(n=1, h=4, w=4):
    return torch.full((n, h, w), 0.5, dtype=torch.float64)


def _fg(block=(0, 4, 0, 4), shape=(8, 8)):
    B = torch.zeros(shape, dtype=torch.float64)
    B[block[0] : block[1], block[2] : block[3]] = 1
    return B


def test_paste_soft_sum_and_none_and_outside():
    m = torch.arange(1, 17, dtype=torch.float64).reshape(1, 4, 4)
    canvas = paste_soft(m, torch.tensor([[-2, 6]]), (8, 8))
    # Only rows 2..3 and cols 0..1 of the window land inside (image rows 0..1, cols 6..7).
    assert canvas.sum() == pytest.approx(float(m[0, 2:, :2].sum()))
    assert canvas[0, 6] == m[0, 2, 0] and canvas[1, 7] == m[0, 3, 1]
    two = paste_soft(torch.ones(2, 4, 4), torch.tensor([[0, 0], [0, 2]]), (8, 8))
    assert two[0, 2] == 2 and two[0, 0] == 1 and two[0, 5] == 1 and two.sum() == 32
    per = paste_soft(torch.ones(2, 4, 4), torch.tensor([[0, 0], [0, 2]]), (8, 8), reduce="none")
    assert per.shape == (2, 8, 8) and torch.equal(per.sum(0), two)


def test_coverage_term_by_hand():
    # B covers 16 px; one half-probability mask over it: coverage = 16 - 8.
    out = lacss_weak_loss(_half(), torch.tensor([[0, 0]]), _fg(), from_logits=False)
    assert out["coverage"].item() == pytest.approx(8.0)
    assert out["overlap"].item() == pytest.approx(0.0, abs=1e-9)
    assert out["background"].item() == pytest.approx(0.0)
    assert out["loss"].item() == pytest.approx(8.0)


def test_background_term_by_hand():
    # Mask entirely on background: 2 * (1 - 0) * 0.5 * 16 = 16.
    out = lacss_weak_loss(_half(), torch.tensor([[4, 4]]), _fg(), from_logits=False)
    assert out["background"].item() == pytest.approx(16.0)
    assert out["coverage"].item() == pytest.approx(16 - 8)


def test_overlap_term_by_hand_full_and_partial():
    B = _fg((0, 8, 0, 8))
    full = lacss_weak_loss(_half(2), torch.tensor([[0, 0], [0, 0]]), B, from_logits=False)
    # each of 2 masks: 16 px * 0.5 * (-log 0.5); divided by N = 2
    assert full["overlap"].item() == pytest.approx(2 * 16 * 0.5 * LN2 / 2)
    part = lacss_weak_loss(_half(2), torch.tensor([[0, 0], [0, 2]]), B, from_logits=False)
    assert part["overlap"].item() == pytest.approx(2 * 8 * 0.5 * LN2 / 2)
    # coverage: (64 - 2 * 8) / 2
    assert part["coverage"].item() == pytest.approx(24.0)


def test_outside_pixels_and_valid_are_ignored():
    out = lacss_weak_loss(_half(), torch.tensor([[-2, -2]]), torch.zeros(8, 8, dtype=torch.float64), from_logits=False)
    # 4 px inside: coverage 0 - 0.5*4, background 2 * 0.5 * 4
    assert out["coverage"].item() == pytest.approx(-2.0)
    assert out["background"].item() == pytest.approx(4.0)
    valid = torch.ones(8, 8, dtype=torch.float64)
    valid[:, 2:] = 0
    out = lacss_weak_loss(_half(), torch.tensor([[0, 0]]), _fg(), valid, from_logits=False)
    # valid foreground 4x2 = 8 px, valid mask pixels 8 * 0.5
    assert out["coverage"].item() == pytest.approx(8 - 4)


def test_logits_equal_probabilities_and_empty():
    a = lacss_weak_loss(torch.zeros(2, 4, 4, dtype=torch.float64), torch.tensor([[0, 0], [1, 3]]), _fg())
    b = lacss_weak_loss(_half(2), torch.tensor([[0, 0], [1, 3]]), _fg(), from_logits=False)
    for k in a:
        assert a[k].item() == pytest.approx(b[k].item())
    empty = lacss_weak_loss(torch.zeros(0, 4, 4, requires_grad=True), torch.zeros(0, 2, dtype=torch.long), _fg())
    assert empty["loss"].item() == pytest.approx(16.0)
    empty["loss"].backward()  # still attached to the graph


def test_gradients_flow_and_match_finite_differences(rng):
    logits = torch.tensor(rng.normal(size=(3, 5, 5)), dtype=torch.float64, requires_grad=True)
    origins = torch.tensor([[0, 0], [2, 3], [-1, 5]])
    B = torch.tensor(rng.random((9, 9)), dtype=torch.float64)
    torch.autograd.gradcheck(lambda z: lacss_weak_loss(z, origins, B)["loss"], (logits,))
    # extreme logits stay finite
    big = torch.full((2, 4, 4), 60.0, requires_grad=True)
    out = lacss_weak_loss(big, torch.tensor([[0, 0], [0, 0]]), _fg().float())
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and torch.isfinite(big.grad).all()


def test_gradient_signs_grow_on_foreground_shrink_on_background():
    z = torch.zeros(1, 4, 4, dtype=torch.float64, requires_grad=True)
    lacss_weak_loss(z, torch.tensor([[2, 2]]), _fg())["loss"].backward()
    g = z.grad[0]
    assert (g[:2, :2] < 0).all()  # window rows/cols 0..1 sit on the foreground: grow
    assert (g[2:, 2:] > 0).all()  # on background: shrink


def test_point_spacing_and_background_from_points():
    pts = np.array([[0, 0], [0, 10], [20, 0]], np.float32)
    assert point_spacing(pts) == pytest.approx(10.0)
    assert point_spacing(torch.as_tensor(pts)) == pytest.approx(10.0)
    assert point_spacing(np.zeros((1, 2)), DEFAULT_SPACING) == 32.0
    assert math.isnan(point_spacing(np.zeros((0, 2))))
    bg = background_from_points(np.array([[2, 2]]), (8, 8), distance=3.0)
    assert bg[2, 2] == 0 and bg[2, 5] == 0 and bg[2, 6] == 1 and bg[7, 7] == 1
    assert background_from_points(np.zeros((0, 2)), (4, 4)).sum() == 16


def test_points_mode_terms_by_hand():
    G = torch.zeros(8, 8, dtype=torch.float64)
    G[:, 4:] = 1
    out = points_mode_loss(
        _half(), torch.tensor([[0, 2]]), np.array([[2.0, 4.0]]), (8, 8), background=G, min_area=16.0, from_logits=False
    )
    assert out["background"].item() == pytest.approx(2 * 0.5 * 8)
    assert out["small_area"].item() == pytest.approx(16 - 8)  # pixels short of A_min
    assert out["overlap"].item() == pytest.approx(0.0, abs=1e-9)
    assert out["loss"].item() == pytest.approx(8 + 8)


def test_points_mode_growth_pull_matches_shrink_pull_per_pixel():
    # A lone mask below A_min: every pixel off the background earns exactly 1 (as coverage
    # does in the weak loss); a background pixel pays 2, so the net push there is +1 (shrink).
    G = torch.zeros(8, 8, dtype=torch.float64)
    G[:, 4:] = 1
    y = _half().requires_grad_(True)
    points_mode_loss(
        y, torch.tensor([[0, 2]]), np.array([[2.0, 4.0]]), (8, 8), background=G, min_area=100.0, from_logits=False
    )["loss"].backward()
    assert torch.allclose(y.grad[0, :, :2], torch.tensor(-1.0, dtype=torch.float64))
    assert torch.allclose(y.grad[0, :, 2:], torch.tensor(1.0, dtype=torch.float64))
    # Above A_min nothing pulls the mask outward any more.
    y2 = torch.full((1, 4, 4), 0.9, dtype=torch.float64, requires_grad=True)
    points_mode_loss(
        y2,
        torch.tensor([[0, 0]]),
        np.array([[2.0, 2.0]]),
        (8, 8),
        background=torch.zeros_like(G),
        min_area=10.0,
        from_logits=False,
    )["loss"].backward()
    assert torch.count_nonzero(y2.grad) == 0


def test_points_mode_collaborator_trains_only_through_fit_term(rng):
    z = torch.zeros(2, 4, 4, requires_grad=True)
    collab = torch.full((8, 8), 1.5, requires_grad=True)  # B = 0.82: nonzero net push on the masks
    out = points_mode_loss(
        z, torch.tensor([[0, 0], [4, 4]]), np.array([[2.0, 2.0], [6.0, 6.0]]), (8, 8), collaborator=collab
    )
    assert {"collab_masks", "collab_fit"} <= set(out)
    out["collab_fit"].backward(retain_graph=True)
    assert z.grad is None and collab.grad.abs().sum() > 0
    collab.grad = None
    out["collab_masks"].backward()
    assert collab.grad is None and z.grad.abs().sum() > 0


def test_points_mode_collaborator_target_anchored_by_points_when_masks_are_empty():
    # Empty masks: the collaborator is still pulled up at the points (nucleus discs of
    # spacing/4) and down on the far background, so it cannot settle on "no foreground".
    z = torch.full((1, 4, 4), -30.0)
    collab = torch.zeros(16, 16, requires_grad=True)
    out = points_mode_loss(
        z, torch.tensor([[2, 2]]), np.array([[4.0, 4.0]]), (16, 16), collaborator=collab, spacing=8.0
    )
    out["collab_fit"].backward()
    g = collab.grad
    assert g[4, 4] < 0  # at the point: raise the foreground logit
    assert g[15, 15] > 0  # farther than one spacing from the point: lower it


def test_size_loss_and_warmup():
    y = _half()
    assert size_loss(y, max_area=4.0, from_logits=False).item() == pytest.approx(1.0)
    assert size_loss(y, max_area=16.0, from_logits=False).item() == 0.0
    # with origins, only in-image pixels count: 4 px * 0.5 = 2 < 4
    assert size_loss(y, torch.tensor([[-2, -2]]), (8, 8), max_area=1.0, from_logits=False).item() == pytest.approx(1.0)
    assert warmup_weight(5, start=10, ramp=10) == 0.0
    assert warmup_weight(14, start=10, ramp=10) == pytest.approx(0.5)
    assert warmup_weight(100, start=10, ramp=10, final=2.0) == 2.0


def test_weak_image_loss_combines_terms_with_warmup():
    from lociseg.losses.weak_combined import WeakLossConfig, weak_image_loss

    cfg = WeakLossConfig(warmup_start=0, warmup_steps=10, size_weight=0.0)
    z = torch.zeros(1, 4, 4, dtype=torch.float64)
    pts = torch.tensor([[2.0, 2.0]])
    loss, parts = weak_image_loss(cfg, z, torch.tensor([[0, 0]]), pts, foreground=_fg(), step=4)
    assert parts["weak_weight"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx(0.5 * 8.0)  # coverage 16 - 8 only
    with pytest.raises(ValueError, match="foreground"):
        weak_image_loss(cfg, z, torch.tensor([[0, 0]]), pts, shape=(8, 8))
    pcfg = WeakLossConfig.from_dict({"collaborator": True, "aux_weight": 1.0})
    collab = torch.zeros(8, 8, requires_grad=True)
    aux = torch.zeros(8, 8, requires_grad=True)
    bump = torch.zeros(1, 4, 4)
    bump[0, 1:3, 1:3] = 3.0  # a mask with edges (a uniform one has none, and the aux target is 0)
    loss, parts = weak_image_loss(
        pcfg,
        bump.requires_grad_(),
        torch.tensor([[0, 0]]),
        pts,
        shape=(8, 8),
        step=0,
        collaborator=collab,
        aux_pred=aux,
        mode="points",
    )
    assert {"overlap", "background", "small_area", "collab_fit", "size", "aux"} <= set(parts)
    loss.backward()
    # step 0 of the warm-up: only the collaborator fit and the aux net learn
    assert collab.grad.abs().sum() > 0 and aux.grad.abs().sum() > 0
    # The collaborator steers the masks only after a second warm-up.
    ccfg = WeakLossConfig(collaborator=True, warmup_steps=10, size_weight=0.0)
    collab_hi = torch.full((8, 8), 3.0)  # "foreground everywhere": its coverage pull grows the mask

    def mask_grad(step):
        zz = torch.zeros(1, 4, 4, requires_grad=True)
        loss, parts = weak_image_loss(
            ccfg,
            zz,
            torch.tensor([[0, 0]]),
            pts,
            shape=(8, 8),
            step=step,
            collaborator=collab_hi,
            scale=100.0,
            mode="points",
        )
        loss.backward()
        return zz.grad.sum().item(), parts["collab_weight"]

    g_first, cw_first = mask_grad(9)  # points terms fully on, collaborator's pull still off
    g_late, cw_late = mask_grad(25)
    assert cw_first == 0.0 and cw_late == 1.0
    assert g_late < g_first < 0  # both grow the mask; the collaborator's coverage adds to it


def test_lacss_loss_optimisation_partitions_foreground():
    """Blob-initialised logits of two overlapping windows over two touching cells settle into one cell each."""
    B = torch.zeros(20, 30)
    B[5:15, 3:27] = 1  # a 10 x 24 foreground: two cells side by side
    origins = torch.tensor([[0, 0], [0, 10]])
    # start as blobs around the two cell centres (10, 9) and (10, 21), as a network's masks would
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    z0 = [2 - torch.hypot(yy - 10, xx - c) / 3 for c in (9.0, 11.0)]
    z = torch.stack(z0).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        lacss_weak_loss(z, origins, B)["loss"].backward()
        opt.step()
    canvas = paste_soft(torch.sigmoid(z.detach()), origins, (20, 30), reduce="none")
    union = canvas.max(0).values > 0.5
    iou = (union & (B > 0)).sum() / (union | (B > 0)).sum()
    assert iou > 0.9
    both = ((canvas > 0.5).sum(0) > 1).sum() / union.sum()
    assert both < 0.1  # little overlap
    assert (canvas[0] > 0.5).sum() > 80 and (canvas[1] > 0.5).sum() > 80  # each takes about one cell (120 px)


@pytest.mark.parametrize("r0", [2.0, 9.0])
def test_points_loss_balances_growth_and_overlap_at_the_spacing_disc(r0):
    """Masks as a shared-weight model would make them (discs of one learned radius around two points 12 px
    apart) settle at about the disc of one spacing, from too small and from overlapping starts. (With the
    small-area term divided by A_min, growth lost to the other terms and masks stalled or collapsed.)"""
    pts = np.array([[15.0, 12.0], [15.0, 24.0]])
    origins = torch.tensor([[5, 2], [5, 14]])
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    dist = torch.hypot(yy - 10, xx - 10)  # window centre = the point
    r = torch.tensor(r0, requires_grad=True)
    opt = torch.optim.Adam([r], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        points_mode_loss((r - dist).expand(2, 20, 20), origins, pts, (30, 40))["loss"].backward()
        opt.step()
    assert 5.0 < r.item() < 6.5  # radius ~ spacing / 2: each mask holds ~A_min, the two barely overlap


def test_territory_map_by_hand():
    """Own point at x=20, neighbour at x=40 (bisector x=30), margin 4: 0 up to x=34, linear to 1 at x=38."""
    pts = torch.tensor([[20.0, 20.0], [20.0, 40.0]])
    T = territory_map(torch.tensor([[0, 0], [0, 20]]), (40, 40), pts, torch.tensor([0, 1]), margin=4.0)
    row0 = T[0, 20, 28:40]
    assert torch.allclose(row0, torch.tensor([0, 0, 0, 0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1]))
    assert T[0, :, :30].max() == 0  # the own side of the bisector is never penalised
    # The neighbour's map mirrors it (window column c is image x = 20 + c).
    assert torch.allclose(T[1, 20, :8], torch.tensor([1, 1, 1, 0.75, 0.5, 0.25, 0, 0]))
    # Off the joining line the past-the-bisector distance is smaller: less penalty at equal x.
    assert T[0, 5, 36] < T[0, 20, 36]
    assert territory_map(torch.tensor([[0, 0]]), (8, 8), pts[:1], torch.tensor([0]), margin=2.0).max() == 0
    with pytest.raises(ValueError, match="margin"):
        territory_map(torch.tensor([[0, 0]]), (8, 8), pts, torch.tensor([0]), margin=0.0)


def test_territory_loss_by_hand_and_ignores_outside():
    pts = torch.tensor([[2.0, 2.0], [2.0, 10.0]])  # bisector x = 6
    origins = torch.tensor([[0, 0]])
    ones = torch.ones(1, 4, 12, dtype=torch.float64)
    T = territory_map(origins, (4, 12), pts, torch.tensor([0]), margin=1.0)
    loss = territory_loss(ones, origins, T, (4, 12), from_logits=False)
    assert loss.item() == pytest.approx(2.0 * T.sum().item(), rel=1e-5)
    assert T.sum() > 0
    half = territory_loss(ones, origins, T, (4, 6), from_logits=False)
    assert half.item() == 0.0  # the penalised pixels lie outside a 6-px-wide image
    valid = torch.zeros(4, 12)
    assert territory_loss(ones, origins, T, (4, 12), valid=valid, from_logits=False).item() == 0.0
    assert (
        territory_loss(
            torch.zeros(0, 4, 12), torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, 4, 12), (4, 12)
        ).item()
        == 0.0
    )


@pytest.mark.parametrize("territory", [False, True])
def test_territory_term_moves_a_lopsided_border_to_the_bisector(territory):
    """Two touching cells (points 12 px apart, bisector x = 15), masks starting with a border at x = 24.
    Coverage, overlap and background are indifferent to where the border lies, so alone they keep it;
    the territory term moves it back to where its penalty sets in (margin 2: from x = 17, full at 19)."""
    B = torch.zeros(20, 30)
    B[5:15, 3:27] = 1
    pts = torch.tensor([[10.0, 9.0], [10.0, 21.0]])
    origins = torch.tensor([[0, 0], [0, 0]])
    x = torch.arange(30.0)
    z = torch.stack([torch.where(x < 24, 4.0, -4.0), torch.where(x >= 24, 4.0, -4.0)])
    z = z[:, None, :].expand(2, 20, 30).clone().requires_grad_(True)
    T = territory_map(origins, (20, 30), pts, torch.tensor([0, 1]), margin=2.0)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = lacss_weak_loss(z, origins, B)["loss"]
        if territory:
            loss = loss + territory_loss(z, origins, T, (20, 30))
        loss.backward()
        opt.step()
    canvas = paste_soft(torch.sigmoid(z.detach()), origins, (20, 30), reduce="none") > 0.5
    left = canvas[0][B > 0].sum().item() / 10  # columns of the clump held by the left cell
    right = canvas[1][B > 0].sum().item() / 10
    if territory:
        assert 12 <= left <= 16 and 7 <= right <= 12  # border at x = 15-19
    else:
        assert left == 21 and right == 3  # still at x = 24


def test_weak_image_loss_territory_term_with_default_owners():
    from lociseg.losses.weak_combined import WeakLossConfig, weak_image_loss

    B = torch.ones(20, 30)
    pts = torch.tensor([[10.0, 9.0], [10.0, 21.0]])
    origins = torch.tensor([[0, -1], [0, 11]])  # windows centred on the points
    z = torch.full((2, 20, 20), 3.0)
    cfg = WeakLossConfig(size_weight=0.0, warmup_steps=1, territory_weight=0.5, territory_margin=0.1)
    loss, parts = weak_image_loss(cfg, z, origins, pts, foreground=B, scale=20.0, step=5)
    base, base_parts = weak_image_loss(
        WeakLossConfig(size_weight=0.0, warmup_steps=1), z, origins, pts, foreground=B, step=5
    )
    assert "territory" in parts and "territory" not in base_parts
    expected = territory_loss(
        z, origins, territory_map(origins, (20, 20), pts, torch.tensor([0, 1]), margin=2.0), (20, 30)
    )
    assert parts["territory"] == pytest.approx(expected.item()) and expected.item() > 0
    assert loss.item() == pytest.approx(base.item() + 0.5 * expected.item(), rel=1e-5)
    assert parts["territory_weight"] == 0.5
    # It moves borders, it does not form masks: off until the mask terms' warm-up is over.
    early, early_parts = weak_image_loss(cfg, z, origins, pts, foreground=B, scale=20.0, step=0)
    assert early_parts["territory_weight"] == 0.0
    swapped, sw_parts = weak_image_loss(
        cfg, z, origins, pts, foreground=B, scale=20.0, step=5, owners=torch.tensor([1, 0])
    )
    assert sw_parts["territory"] > parts["territory"]  # each window now "belongs" to the far point


def test_cells_territory_map_by_hand():
    """Cells 1 (x 2-9) | 2 (x 10-19); margin 2: 0 up to depth 2, 1 from depth 4."""
    from lociseg.losses.territory import cells_territory_map
    from lociseg.train.data import border_depth

    cells = np.zeros((6, 24), np.int64)
    cells[:, 2:10], cells[:, 10:20] = 1, 2
    depth = torch.from_numpy(border_depth(cells))
    cells = torch.from_numpy(cells)
    origins = torch.tensor([[0, 0], [0, 0], [0, 0]])
    T = cells_territory_map(origins, (6, 24), cells, depth, torch.tensor([1, 2, 0]), margin=2.0)
    assert T[0, :, :10].max() == 0  # own cell and background cost nothing
    # Depths in cell 2: 0 1 2 3 4 4 3 2 1 0 (borders with cell 1 at x = 10, with background at x = 19).
    assert torch.allclose(T[0, 3, 10:20], torch.tensor([0, 0, 0, 0.5, 1, 1, 0.5, 0, 0, 0]))
    assert torch.allclose(T[1, 3, 2:10], torch.tensor([0, 0, 0, 0.5, 0.5, 0, 0, 0]))  # cell 1 is 8 px wide
    assert T[2].max() == 0  # a point on no cell gets no prior
    assert T[1, :, 10:].max() == 0 and T[0, :, 20:].max() == 0
    with pytest.raises(ValueError, match="margin"):
        cells_territory_map(origins, (6, 24), cells, depth, torch.tensor([1, 2, 0]), margin=0.0)


def test_weak_image_loss_cells_territory():
    """territory_source 'cells': the owner's cell is the one under its point; needs cells."""
    from lociseg.losses.territory import cells_territory_map
    from lociseg.losses.weak_combined import WeakLossConfig, weak_image_loss
    from lociseg.train.data import border_depth

    B = torch.ones(20, 30)
    cells = np.zeros((20, 30), np.int64)
    cells[:, :20], cells[:, 20:] = 1, 2  # the border is off the bisector (x = 15) of the points
    depth = torch.from_numpy(border_depth(cells))
    cells = torch.from_numpy(cells)
    pts = torch.tensor([[10.0, 9.0], [10.0, 21.0]])
    origins = torch.tensor([[0, -1], [0, 11]])
    z = torch.full((2, 20, 20), 3.0)
    cfg = WeakLossConfig(
        size_weight=0.0, warmup_steps=1, territory_weight=1.0, territory_margin=0.1, territory_source="cells"
    )
    _, parts = weak_image_loss(cfg, z, origins, pts, foreground=B, scale=20.0, step=5, cells=cells, cells_depth=depth)
    T = cells_territory_map(origins, (20, 20), cells, depth, torch.tensor([1, 2]), margin=2.0)
    assert parts["territory"] == pytest.approx(territory_loss(z, origins, T, (20, 30)).item())
    # Instance 0's window (x -1..18) lies in its own cell: the border at x = 20, not the
    # bisector at x = 15, is where it starts to pay; instance 1 pays fully deep in cell 1.
    assert T[0].max() == 0 and T[1, :, :5].max() == 1 and T[1, :, 9:].max() == 0
    with pytest.raises(ValueError, match="cells"):
        weak_image_loss(cfg, z, origins, pts, foreground=B, scale=20.0, step=5)


def test_points_mode_background_from_the_foreground():
    from lociseg.losses.weak_combined import WeakLossConfig, weak_image_loss

    pts = torch.tensor([[2.0, 2.0]])
    z = torch.full((1, 4, 4), 10.0, dtype=torch.float64)  # a full 4x4 mask (y ~ 1) in the window at (0, 0)
    fg = torch.zeros(8, 8, dtype=torch.float64)
    fg[:4, :2] = 1.0  # half the window is foreground
    cfg = WeakLossConfig(background_source="foreground", warmup_steps=0, size_weight=0.0)
    _, parts = weak_image_loss(cfg, z, torch.tensor([[0, 0]]), pts, foreground=fg, step=5, mode="points")
    assert parts["background"] == pytest.approx(2.0 * 8, rel=1e-3)  # 8 background pixels, weight 2
    # the distance rule sees no background this close to the point
    dist = WeakLossConfig(warmup_steps=0, size_weight=0.0, background_distance=6.0)
    _, parts = weak_image_loss(dist, z, torch.tensor([[0, 0]]), pts, foreground=fg, step=5, mode="points")
    assert parts["background"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="foreground"):
        weak_image_loss(cfg, z, torch.tensor([[0, 0]]), pts, shape=(8, 8), mode="points")

import numpy as np
import pytest
import torch

from lociseg.losses.lpn import lpn_loss, sigmoid_focal_loss
from lociseg.losses.mask import mask_bce_dice
from lociseg.models import (
    FPN,
    PRESETS,
    BackboneConfig,
    ConvNeXt,
    LacssConfig,
    LacssModel,
    SegHead,
    decode_locations,
    lpn_targets,
)
from lociseg.models.lpn import grid_centres
from lociseg.models.targets import label_centroids


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_backbone_fpn_shapes_every_preset(preset):
    cfg = BackboneConfig(preset=preset)
    enc = ConvNeXt(2, cfg)
    feats = enc(torch.zeros(1, 2, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in feats] == enc.widths
    outs = FPN(enc.widths, 32)(feats)
    assert [o.shape for o in outs] == [torch.Size([1, 32, 64 // s, 96 // s]) for s in (4, 8, 16, 32)]
    assert len(FPN(enc.widths, 32, num_outputs=1)(feats)) == 1


def test_preset_sizes():
    n = {
        p: sum(x.numel() for x in LacssModel(LacssConfig(backbone=BackboneConfig(preset=p))).parameters())
        for p in PRESETS
    }
    assert 1e6 < n["tiny"] < 5e6
    assert 25e6 < n["small"] < 32e6


@pytest.mark.parametrize("preset", ["tiny", "base"])
def test_forward_backward_shapes(preset):
    model = LacssModel(LacssConfig(backbone=BackboneConfig(preset=preset)))
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    labels[:, 5:25, 5:25] = 1
    labels[:, 30:60, 30:55] = 7
    loss, parts = model.training_loss({"image": torch.randn(2, 2, 64, 64), "labels": labels})
    loss.backward()
    assert parts["instances"] == 4
    assert all(p.grad is not None for n, p in model.named_parameters()), "every parameter gets a gradient"
    score, off, dense = model(torch.randn(1, 2, 64, 64))
    assert score.shape == (1, 16, 16) and off.shape == (1, 2, 16, 16) and dense.shape[-2:] == (16, 16)


def test_grid_centres_and_lpn_targets_by_hand():
    c = grid_centres((2, 2), 4)
    assert torch.allclose(c[1, 0], torch.tensor([5.5, 1.5]))
    pts = torch.tensor([[5.5, 5.5], [13.0, 13.5]])
    pos, off, nearest = lpn_targets(pts, (4, 4), 4, radius=2.0)
    # only grid cell (1,1) (centre 5.5,5.5) is within 2 px of point 0; (3,3) centre 13.5,13.5 is 0.5 px from point 1
    assert pos.nonzero().tolist() == [[1, 1], [3, 3]]
    assert torch.allclose(off[:, 1, 1], torch.zeros(2))
    assert torch.allclose(off[:, 3, 3], torch.tensor([-0.5, 0.0]) / 4)
    # ties go to the nearest point
    assert nearest[0, 0] == 0 and nearest[3, 3] == 1


def test_decode_locations_peaks_offsets_and_suppression():
    logits = torch.full((8, 8), -10.0)
    logits[2, 2], logits[2, 3], logits[6, 6] = 5.0, 4.0, 3.0  # (2,3) is no peak
    logits[6, 7] = 2.0
    offsets = torch.zeros(2, 8, 8)
    offsets[:, 6, 6] = torch.tensor([0.25, -0.25])
    loc, s = decode_locations(logits, offsets, 4, min_score=0.5, min_distance=0.0)
    assert torch.allclose(loc, torch.tensor([[9.5, 9.5], [26.5, 24.5]]))
    assert s[0] > s[1]
    # two peaks closer than min_distance: the weaker goes
    logits[2, 4] = 4.5
    loc2, _ = decode_locations(logits, torch.zeros(2, 8, 8), 4, min_score=0.5, min_distance=9.0)
    assert len(loc2) == 2
    loc3, _ = decode_locations(logits, torch.zeros(2, 8, 8), 4, min_score=0.5, min_distance=7.0)
    assert len(loc3) == 3


def test_focal_and_lpn_loss_values():
    x = torch.tensor([0.0])  # float32
    # p = 0.5: focal = alpha * 0.25 * log 2 for a positive
    assert torch.allclose(
        sigmoid_focal_loss(x, torch.ones(1)), torch.tensor([0.25 * 0.25 * np.log(2)], dtype=torch.float32), atol=1e-6
    )
    pos = torch.zeros(1, 4, 4, dtype=torch.bool)
    pos[0, 1, 1] = True
    out = lpn_loss(torch.zeros(1, 4, 4), torch.zeros(1, 2, 4, 4), pos, torch.ones(1, 2, 4, 4) * 0.5)
    assert torch.allclose(out["lpn_offset"], torch.tensor(0.125))  # Huber(0.5) = 0.5 * 0.5^2


def test_mask_loss_perfect_and_ignored():
    t = torch.zeros(1, 8, 8)
    t[0, 2:6, 2:6] = 1
    good = mask_bce_dice((t * 2 - 1) * 20, t)
    bad = mask_bce_dice(-(t * 2 - 1) * 20, t)
    assert good["mask_bce"] < 1e-6 and good["mask_dice"] < 0.05 and bad["mask_bce"] > 10
    ignored = mask_bce_dice(-(t * 2 - 1) * 20, t, torch.zeros_like(t))
    assert ignored["mask_bce"] == 0


def test_label_centroids():
    lab = torch.zeros(6, 6, dtype=torch.long)
    lab[0:2, 0:2] = 3
    lab[4:6, 2:6] = 9
    ids, c = label_centroids(lab)
    assert ids.tolist() == [3, 9] and torch.allclose(c, torch.tensor([[0.5, 0.5], [4.5, 3.5]]))


def test_seghead_windows_are_centred_on_locations():
    head = SegHead(8, width=8, window=6, stride=4)
    dense = torch.randn(8, 10, 10)
    logits, origins = head(dense, torch.tensor([[17.0, 21.0], [0.0, 39.0]]))
    assert logits.shape == (2, 24, 24)
    # the location lies inside its window, near the middle
    assert (origins[:, 0] <= 17).all() and (origins[0] + 24 > torch.tensor([17, 21])).all()
    assert origins[0].tolist() == [(17 // 4 - 3) * 4, (21 // 4 - 3) * 4]


def test_predict_instances_contract():
    model = LacssModel().eval()
    with torch.no_grad():
        model.lpn.score.bias.fill_(5.0)  # force detections
    inst = model.predict_instances(torch.randn(1, 2, 50, 70))
    assert len(inst) > 0
    assert inst.masks.shape[1:] == (96, 96) and inst.masks.dtype == np.float32
    assert ((inst.masks >= 0) & (inst.masks <= 1)).all()
    assert (inst.locations[:, 0] < 50).all() and (inst.locations[:, 1] < 70).all()
    assert np.all(inst.origins <= inst.locations) and np.all(inst.origins + 96 > inst.locations)


def test_loss_decreases_on_a_real_crop(data_root):
    from lociseg.data import load_dataset
    from lociseg.transforms import normalize_percentile

    s = load_dataset("bbbc018@train", root=data_root)[0]
    img = torch.from_numpy(normalize_percentile(s.image)[:, :128, :128].copy())[None]
    lab = torch.from_numpy(s.labels[:128, :128].astype(np.int64))[None]
    torch.manual_seed(0)
    model = LacssModel()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _ = model.training_loss({"image": img, "labels": lab})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])

"""Tests of the 3-class U-Net baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lociseg.errors import ConfigError
from lociseg.models.base import InputSpec
from lociseg.models.unet import UNet, UNetConfig, UNetModel


def _small(**kw) -> UNetConfig:
    kw = {"base_channels": 4, "depth": 2, **kw}
    return UNetConfig(input=InputSpec(in_channels=1), **kw)


def test_forward_any_size_and_presets():
    net = UNet(2, [4, 8, 16])
    out = net(torch.randn(2, 2, 37, 50))
    assert out.shape == (2, 3, 37, 50)
    assert UNetConfig().widths == [32, 64, 128, 256, 512]
    assert UNetConfig.expanded().widths[-2:] == [1024, 2048]
    assert UNetConfig().override({"preset": "expanded"}).widths == UNetConfig.expanded().widths
    m = UNetModel(_small(preset="expanded"))
    assert len(m.net.down) == 5 and m(torch.randn(1, 1, 40, 40)).shape == (1, 3, 40, 40)


def test_config_round_trip_and_checks():
    cfg = _small(class_weights=[1.0, 2.0, 5.0])
    assert UNetConfig.from_yaml(cfg.to_yaml()) == cfg
    assert UNetModel(cfg.override({"input.in_channels": 4}))(torch.randn(1, 4, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="class_weights"):
        UNetConfig(class_weights=[1.0, 10.0])


def test_training_loss_supervised_and_weak_have_gradients():
    torch.manual_seed(0)
    m = UNetModel(_small())
    image = torch.randn(2, 1, 32, 32)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, 5:15, 5:15] = 1
    valid = torch.ones(2, 32, 32)
    valid[:, :, :4] = 0
    loss, parts = m.training_loss({"image": image, "labels": labels, "valid": valid})
    loss.backward()
    assert set(parts) == {"ce"} and loss.item() > 0
    assert m.net.head.weight.grad.abs().sum() > 0
    m.zero_grad()
    weak = {
        "image": image,
        "foreground": (labels > 0).float(),
        "points": [torch.tensor([[10.0, 10.0]]), torch.zeros(0, 2)],
    }
    loss, parts = m.training_loss(weak)
    loss.backward()
    assert set(parts) == {"fg", "seed"} and np.isfinite(loss.item())
    with pytest.raises(ValueError):
        m.training_loss({"image": image})


def test_predict_instances_contract():
    m = UNetModel(_small())
    inst = m.predict_instances(torch.randn(1, 1, 30, 40))
    assert inst.masks.ndim == 3 and inst.scores.dtype == np.float32
    assert m.training  # prediction does not leave the model in eval mode


def _norm(im: np.ndarray) -> np.ndarray:
    im = im.astype(np.float32)
    lo, hi = np.percentile(im, (1, 99.8))
    return ((im - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _f1_50(gt: np.ndarray, pred: np.ndarray) -> float:
    """F1 at IoU 0.5 (matches above 0.5 are unique, so no assignment is needed)."""
    ng, npred = int(gt.max()), int(pred.max())
    if ng == 0 or npred == 0:
        return 0.0
    joint = np.bincount(gt.ravel() * (npred + 1) + pred.ravel(), minlength=(ng + 1) * (npred + 1)).reshape(
        ng + 1, npred + 1
    )
    area_g, area_p = joint.sum(1), joint.sum(0)
    iou = joint / (area_g[:, None] + area_p[None, :] - joint)
    tp = int((iou[1:, 1:] > 0.5).sum())
    return 2 * tp / (ng + npred)


def _paste(inst, shape):
    out = np.zeros(shape, np.int32)
    for k in range(len(inst)):
        oy, ox = inst.origins[k]
        ys, xs = np.nonzero(inst.masks[k] > 0.5)
        ys, xs = ys + oy, xs + ox
        ok = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
        out[ys[ok], xs[ok]] = k + 1
    return out


def _train_on_real_nuclei(steps: int) -> dict:
    """Train a small U-Net on random crops of four DSB2018 images for ``steps`` steps; held-out loss and F1@0.5
    before and after, the final training loss and whether the weights moved."""
    from lociseg.data import load_samples

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = [s for s in load_samples("dsb2018-train", limit=20) if s.image.shape[1:] == (256, 256)][:5]
    images = torch.from_numpy(np.stack([_norm(s.image[:1]) for s in samples]))
    labels = torch.from_numpy(np.stack([s.labels for s in samples]).astype(np.int64))
    train, held_out = [0, 1, 2, 3], 4
    model = UNetModel(_small(base_channels=8, depth=3, boundary_width=1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)  # the seed study's learning rate
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def held_out_scores():
        model.eval()
        with torch.no_grad():
            loss = float(model.training_loss({"image": images[[held_out]], "labels": labels[[held_out]]})[0])
        pred = _paste(model.predict_instances(images[[held_out]]), labels.shape[1:])
        model.train()
        return loss, _f1_50(labels[held_out].numpy(), pred), pred

    loss0, f1_0, _ = held_out_scores()
    c = 96
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = rng.choice(train, 4)
        ys, xs = rng.integers(0, 256 - c, 4), rng.integers(0, 256 - c, 4)
        batch = {
            "image": torch.stack([images[i, :, y : y + c, x : x + c] for i, y, x in zip(idx, ys, xs)]),
            "labels": torch.stack([labels[i, y : y + c, x : x + c] for i, y, x in zip(idx, ys, xs)]),
        }
        loss, _ = model.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss1, f1_1, pred = held_out_scores()
    moved = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    return {
        "loss0": loss0,
        "f1_0": f1_0,
        "loss1": loss1,
        "f1_1": f1_1,
        "train_loss": float(loss.detach()),
        "moved": moved,
        "pred": pred,
        "shape": tuple(labels.shape[1:]),
    }


def test_training_on_real_nuclei_smoke(data_root):
    """Two steps of the loop below: finite losses, weights updated, a label image of the input's size."""
    r = _train_on_real_nuclei(steps=2)
    assert np.isfinite([r["loss0"], r["loss1"], r["train_loss"]]).all()
    assert r["moved"] and r["loss1"] != r["loss0"]
    assert r["pred"].shape == r["shape"] and 0.0 <= r["f1_1"] <= 1.0


@pytest.mark.slow
def test_short_training_on_real_nuclei_beats_untrained(data_root):
    # 300 steps: when the net leaves the all-background start varies with the CPU's float
    # kernels, so the budget leaves a margin over what one machine needed.
    r = _train_on_real_nuclei(steps=300)
    assert r["loss1"] < 0.8 * r["loss0"]
    assert r["f1_1"] > r["f1_0"] + 0.2

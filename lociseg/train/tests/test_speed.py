"""Training speed options (:mod:`lociseg.train.speed`): they train as the default does and save plain weights.

Runs train the tiny LACSS a few steps on small synthetic images (disks) with one thread.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lociseg.train import speed
from lociseg.train.config import ExperimentConfig, OptimConfig
from lociseg.train.loop import train


def _run(
    tmp_path: Path, name: str, samples: tuple, steps: int = 4, **optim
) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Per-step losses (log.csv) and saved weights of a short run with these optim options."""
    cfg = ExperimentConfig().override(
        {
            "data.train": [],
            "data.val": [],
            "data.crop_size": 64,
            "optim.steps": steps,
            "optim.warmup_steps": 2,
            "optim.batch_size": 2,
            "optim.log_every": 1,
            "optim.threads": 1,
            **{f"optim.{k}": v for k, v in optim.items()},
        }
    )
    out = tmp_path / name
    train(cfg, out, train_samples=samples, device="cpu", progress=False)
    with open(out / "log.csv", newline="") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    return losses, load_file(str(out / "last" / "model.safetensors"))


def test_channels_last_trains_as_the_default_and_saves_plain_weights(tmp_path, disk_scenes):
    base, w_base = _run(tmp_path, "base", disk_scenes(), channels_last=False)
    fast, w_fast = _run(tmp_path, "channels_last", disk_scenes(), channels_last=True)
    assert len(fast) == len(base) == 4
    # the same arithmetic in another memory layout: float32 rounding only
    np.testing.assert_allclose(fast, base, rtol=1e-4)
    assert w_fast.keys() == w_base.keys()
    for k, v in w_fast.items():
        assert v.is_contiguous()
        torch.testing.assert_close(v, w_base[k], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_compiled_model_trains_as_the_default(tmp_path, disk_scenes):
    base, _ = _run(tmp_path, "base", disk_scenes(), steps=3, channels_last=False)
    compiled, weights = _run(tmp_path, "compiled", disk_scenes(), steps=3, channels_last=False, compile=True)
    torch._dynamo.reset()
    np.testing.assert_allclose(compiled, base, rtol=1e-3)
    assert not any(k.startswith("_orig_mod") for k in weights)  # compiled in place: the keys are the model's


def test_to_memory_format_changes_only_the_image():
    batch = {"image": torch.zeros(2, 2, 32, 32), "labels": torch.zeros(2, 32, 32, dtype=torch.int64)}
    assert speed.to_memory_format(batch, OptimConfig(channels_last=False)) is batch
    out = speed.to_memory_format(batch, OptimConfig(channels_last=True))
    assert out["image"].is_contiguous(memory_format=torch.channels_last)
    assert not batch["image"].is_contiguous(memory_format=torch.channels_last)  # the caller's batch is kept
    assert out["labels"] is batch["labels"]
    assert torch.equal(out["image"], batch["image"])


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    flags = speed.cpu_flags(info)
    assert {"avx2", "avx512_bf16"} <= flags and "fpu" in flags
    assert speed.BF16_FLAGS & flags
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    assert not speed.BF16_FLAGS & speed.cpu_flags(info)
    assert speed.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("native", [False, True])
def test_cpu_bf16_autocast_only_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: native)
    cpu = torch.device("cpu")
    with speed.train_autocast(cpu, OptimConfig(cpu_bf16=True)):
        y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    with speed.train_autocast(cpu, OptimConfig()):  # off by default, whatever the CPU
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.float32


def test_channels_last_is_the_encoders_only():
    from lociseg.models import LacssConfig, LacssModel

    model = speed.speed_up_model(LacssModel(LacssConfig()), OptimConfig(channels_last=True))
    stem = model.backbone.stem[0].weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    assert model.fpn.output[0].weight.is_contiguous() and model.lpn.score.weight.is_contiguous()
    image = torch.rand(1, 2, 64, 64).contiguous(memory_format=torch.channels_last)
    assert all(f.is_contiguous() for f in model.backbone(image))  # the heads get the standard layout

"""Training speed options: channels-last memory format, ``torch.compile``, bfloat16 autocast.

Each option is one field of :class:`~lociseg.train.config.OptimConfig`; the
training loop calls :func:`speed_up_model` once on the model,
:func:`to_memory_format` on every batch and runs each step under
:func:`train_autocast`. None of them changes what is saved: checkpoints hold
plain (contiguous, float32) weights that predict as any other model does.
``benchmarks/bench_train_speed.py`` measures what each option is worth.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Any

import torch

from .config import OptimConfig

log = logging.getLogger("lociseg.train")

#: CPU flags of native bfloat16 arithmetic (AVX-512 BF16 dot products, AMX tiles).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where there is no such file, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (``avx512_bf16`` or AMX)."""
    return bool(BF16_FLAGS & cpu_flags())


def speed_up_model(model: torch.nn.Module, optim: OptimConfig) -> torch.nn.Module:
    """The model with its encoder in the memory format ``optim`` asks for, its ``forward`` compiled if asked.

    Call it once, after moving the model to its device and before building
    the optimiser (its parameters change layout, not identity).
    ``torch.compile`` compiles the dense pass (``forward``) in place, so the
    state dict keeps its keys; the per-instance head and the losses run eagerly.
    """
    encoder = getattr(model, "backbone", None)
    if optim.channels_last and isinstance(encoder, torch.nn.Module):
        # Only the ConvNeXt encoder: its depthwise 7x7 convolutions and layer norms gain; the heads'
        # 3x3 convolutions and the per-instance head lose (measured on AVX2), so the encoder hands its
        # features on in the standard layout. Models without one (the U-Net) are left as they are.
        encoder.to(memory_format=torch.channels_last)
        encoder.register_forward_hook(_standard_layout)
    if optim.compile:
        model.compile()
    return model


def _standard_layout(module: torch.nn.Module, inputs: Any, features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Forward hook: the encoder's feature maps in the standard (contiguous) layout."""
    return [f.contiguous() for f in features]


def to_memory_format(batch: dict[str, Any], optim: OptimConfig) -> dict[str, Any]:
    """The batch with its image in the model's memory format (channels-last when ``optim.channels_last``)."""
    if not optim.channels_last:
        return batch
    return dict(batch, image=batch["image"].contiguous(memory_format=torch.channels_last))


def train_autocast(device: torch.device, optim: OptimConfig) -> contextlib.AbstractContextManager:
    """The autocast context of a training step.

    CUDA: bfloat16 when ``optim.amp``. CPU: bfloat16 when ``optim.cpu_bf16``
    and the CPU has native bfloat16 (:func:`cpu_has_bf16`); without it float32
    (emulated bfloat16 is slower than float32), said once in the log.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=optim.amp)
    if device.type == "cpu" and optim.cpu_bf16:
        if cpu_has_bf16():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        _warn_no_bf16()
    return contextlib.nullcontext()


@functools.cache
def _warn_no_bf16() -> None:
    log.warning("optim.cpu_bf16: this CPU has no native bfloat16 (avx512_bf16 / AMX); training in float32")

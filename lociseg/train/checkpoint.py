"""Training-state side of checkpoints: the run's configuration and an exact resume.

Writing and loading a model's checkpoint is :mod:`lociseg.models.checkpoint`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import InputError
from ..models.checkpoint import CONFIG, STATE_JSON, STATE_TENSORS, resolve_checkpoint
from .config import ExperimentConfig


def load_experiment_config(path: str | os.PathLike) -> ExperimentConfig:
    """The :class:`ExperimentConfig` stored with a checkpoint."""
    return ExperimentConfig.from_yaml(resolve_checkpoint(path) / CONFIG)


def load_training_state(
    path: str | os.PathLike, optimizer: torch.optim.Optimizer, scheduler: Any = None
) -> dict[str, Any]:
    """Restore optimizer, scheduler and torch RNG from a checkpoint; returns the JSON state (``step`` ...)."""
    folder = Path(path)
    if not (folder / STATE_JSON).is_file():
        raise InputError("checkpoint has no training state to resume from", path=folder)
    meta = json.loads((folder / STATE_JSON).read_text())
    tensors = load_file(str(folder / STATE_TENSORS))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta

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

from ..errors import ConfigError, InputError
from ..models.checkpoint import (
    STATE_JSON,
    STATE_TENSORS,
    checkpoint_config_data,
    load_checkpoint,
    model_config,
)
from ..models.pretrained import resolve_model
from .config import ExperimentConfig


def load_experiment_config(path: str | os.PathLike) -> ExperimentConfig:
    """The :class:`ExperimentConfig` stored with a checkpoint (options it predates as it was trained)."""
    return ExperimentConfig.from_dict(checkpoint_config_data(path))


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


def init_weights(model: torch.nn.Module, config: ExperimentConfig) -> None:
    """Copy the weights of ``config.init`` (shipped name or checkpoint / run folder) into ``model``.

    Raises
    ------
    ConfigError
        The trained model is of another type, takes other channels, has
        another backbone or works at another scale than ``config`` builds.
    """
    path = Path(config.init)
    if not path.exists():
        path = resolve_model(config.init)
    source = model_config(path)
    mine = config.model
    where = f"init {config.init!r}"
    if type(source) is not type(mine):
        raise ConfigError(f"{where} is a {type(source).__name__}, this run builds a {type(mine).__name__}")
    if source.input.in_channels != mine.input.in_channels:
        raise ConfigError(
            f"{where} takes {source.input.in_channels} channel(s), this run {mine.input.in_channels} "
            "(set lacss.input.in_channels or pick another model)"
        )
    if source.input.target_diameter != mine.input.target_diameter:
        raise ConfigError(
            f"{where} works at target_diameter {source.input.target_diameter}, this run at {mine.input.target_diameter}"
        )
    preset = getattr(getattr(source, "backbone", None), "preset", None)
    if preset != getattr(getattr(mine, "backbone", None), "preset", None):
        raise ConfigError(f"{where} has backbone preset {preset!r}, this run another; use the model's settings")
    trained = load_checkpoint(path, "cpu").state_dict()
    own = model.state_dict()
    wrong = [k for k in own if k not in trained or trained[k].shape != own[k].shape]
    if wrong:
        raise ConfigError(f"{where}: weights do not fit this run's model (e.g. {wrong[0]}); use the model's settings")
    model.load_state_dict(trained)

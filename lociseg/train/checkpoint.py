"""Checkpoints: a folder with weights (safetensors), the full config (YAML) and metrics (JSON).

Nothing is pickled: training state for an exact resume (optimizer moments,
scheduler, RNG, step) is stored as safetensors + JSON too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import InputError
from ..models.base import SegmentationModel
from ..models.registry import build_model
from .config import ExperimentConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
METRICS = "metrics.json"
STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def _atomic_dir(path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _commit_dir(tmp: Path, path: Path) -> None:
    # Swap in the new folder so an interruption never leaves a half-written checkpoint;
    # a kill between the two renames leaves the old one as .NAME.old (see recover_checkpoint).
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)


def recover_checkpoint(path: str | os.PathLike) -> bool:
    """Finish a checkpoint swap a kill interrupted: put back ``.NAME.old`` when ``NAME`` is missing.

    Returns whether a checkpoint folder is there now. A leftover
    ``.NAME.tmp`` (a kill while writing) is incomplete and is ignored.
    """
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and (old / WEIGHTS).is_file():
        os.replace(old, path)
    return path.is_dir()


def save_checkpoint(
    path: str | os.PathLike,
    model: SegmentationModel,
    config: ExperimentConfig,
    metrics: dict[str, Any] | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int | None = None,
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder (atomically replacing an existing one)."""
    path = Path(path)
    tmp = _atomic_dir(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS), metadata={"format": "lociseg", "model_type": config.model_type})
    config.to_yaml(tmp / CONFIG)
    (tmp / METRICS).write_text(json.dumps(metrics or {}, indent=2, default=float))
    if optimizer is not None:
        tensors: dict[str, torch.Tensor] = {}
        opt = optimizer.state_dict()
        for pid, st in opt["state"].items():
            for key, val in st.items():
                t = val if torch.is_tensor(val) else torch.tensor(val)
                tensors[f"opt.{pid}.{key}"] = t.detach().cpu().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp / STATE_TENSORS))
        meta = {
            "step": step,
            "param_groups": opt["param_groups"],
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            **(extra_state or {}),
        }
        (tmp / STATE_JSON).write_text(json.dumps(meta, indent=2, default=float))
    _commit_dir(tmp, path)
    return path


def half_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint with its floating-point weights stored as float16.

    Halves the weight file (the ``base`` backbone: 20 MB -> 10 MB, under the
    16 MB a shipped model or a file carried back from a device may take);
    :func:`load_checkpoint` casts the weights back to the model's float32.
    Training state is not copied: the result is for prediction, not resuming.
    """
    src, dst = resolve_checkpoint(src), Path(dst)
    tmp = _atomic_dir(dst)
    state = load_file(str(src / WEIGHTS))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(half, str(tmp / WEIGHTS), metadata={"format": "lociseg", "dtype": "float16"})
    for name in (CONFIG, METRICS):
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    _commit_dir(tmp, dst)
    return dst


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder for a folder, a run folder (its ``best``/``last``) or a ``model.safetensors``."""
    p = Path(path)
    if p.is_file() and p.name == WEIGHTS:
        p = p.parent
    if p.is_dir() and not (p / WEIGHTS).exists():
        for sub in ("best", "last"):
            if (p / sub / WEIGHTS).exists():
                return p / sub
    if not (p / WEIGHTS).is_file():
        raise InputError(f"no checkpoint here (expected {WEIGHTS} and {CONFIG})", path=p)
    if not (p / CONFIG).is_file():
        raise InputError(f"checkpoint has no {CONFIG}", path=p)
    return p


def load_experiment_config(path: str | os.PathLike) -> ExperimentConfig:
    """The :class:`ExperimentConfig` stored with a checkpoint."""
    return ExperimentConfig.from_yaml(resolve_checkpoint(path) / CONFIG)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> SegmentationModel:
    """Rebuild the model of a checkpoint, weights loaded, in eval mode.

    ``model.experiment_config`` holds the full configuration and
    ``model.checkpoint_path`` the folder it came from.
    """
    folder = resolve_checkpoint(path)
    config = ExperimentConfig.from_yaml(folder / CONFIG)
    model = build_model(config.model)
    try:
        state = load_file(str(folder / WEIGHTS), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"cannot read weights ({exc})", path=folder / WEIGHTS) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(f"weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})", path=folder)
    model.experiment_config = config
    model.checkpoint_path = folder
    return model.to(device).eval()


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

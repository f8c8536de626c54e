"""Checkpoints: a folder with weights (safetensors), the full config (YAML) and metrics (JSON).

Nothing is pickled: training state for an exact resume (optimizer moments,
scheduler, RNG, step) is stored as safetensors + JSON too
(:func:`lociseg.train.checkpoint.load_training_state` reads it back). The
config is the training run's (:class:`lociseg.train.config.ExperimentConfig`);
a model is rebuilt from its ``model_type`` section alone.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import Config
from ..errors import ConfigError, InputError
from ..io.files import atomic_write, recover_folder
from .base import SegmentationModel
from .registry import MODEL_TYPES, build_model

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
METRICS = "metrics.json"
STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def recover_checkpoint(path: str | os.PathLike) -> bool:
    """Finish a checkpoint write a kill interrupted (:func:`lociseg.io.files.recover_folder`).

    Returns whether a checkpoint folder is there now.
    """
    return recover_folder(path) and (Path(path) / WEIGHTS).is_file()


def save_checkpoint(
    path: str | os.PathLike,
    model: SegmentationModel,
    config: Config,
    metrics: dict[str, Any] | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int | None = None,
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder (atomically replacing an existing one).

    ``config`` is the run's whole configuration (an ``ExperimentConfig``,
    with ``model_type`` and one section per model type).
    """

    def write(tmp: Path) -> None:
        tmp.mkdir()
        _write_checkpoint(tmp, model, config, metrics, optimizer, scheduler, step, extra_state)

    return atomic_write(path, write, overwrite=True)


def _write_checkpoint(
    tmp: Path,
    model: SegmentationModel,
    config: Config,
    metrics: dict[str, Any] | None,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    step: int | None,
    extra_state: dict[str, Any] | None,
) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _save_tensors(state, tmp / WEIGHTS, metadata={"format": "lociseg", "model_type": config.model_type})
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
        _save_tensors(tensors, tmp / STATE_TENSORS)
        meta = {
            "step": step,
            "param_groups": opt["param_groups"],
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            **(extra_state or {}),
        }
        (tmp / STATE_JSON).write_text(json.dumps(meta, indent=2, default=float))


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors`` ``save_file``, its I/O failures as :class:`OSError` (one line for the user, not a traceback)."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        text = str(exc)
        code = errno.ENOSPC if any(s in text for s in ("No space left", "StorageFull", "os error 28")) else errno.EIO
        raise OSError(code, os.strerror(code), str(path)) from exc


def half_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint with its floating-point weights stored as float16.

    Halves the weight file (the ``base`` backbone: 20 MB -> 10 MB, under the
    16 MB a shipped model or a file carried back from a device may take);
    :func:`load_checkpoint` casts the weights back to the model's float32.
    Training state is not copied: the result is for prediction, not resuming.
    """
    src = resolve_checkpoint(src)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        state = load_file(str(src / WEIGHTS))
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        _save_tensors(half, tmp / WEIGHTS, metadata={"format": "lociseg", "dtype": "float16"})
        for name in (CONFIG, METRICS):
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)

    return atomic_write(dst, write, overwrite=True)


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


_DROPPED = (
    ("lacss", "weak", "mode"),  # set from lacss.mode
    ("unet", "lr"),  # the optim section is what trains
    ("unet", "batch_size"),
    ("unet", "crop_size"),
)


def upgrade_config(data: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of an experiment config mapping in the current layout.

    Configs written before issue 19 (the shipped models' among them) carry
    options that are now gone: they are dropped, and ``unet.in_channels``
    becomes ``unet.input.in_channels`` (which it mirrored).
    """
    data = copy.deepcopy(dict(data or {}))
    for path in _DROPPED:
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    unet = data.get("unet")
    if isinstance(unet, dict) and "in_channels" in unet:
        n = unet.pop("in_channels")
        spec = unet.setdefault("input", {})
        if isinstance(spec, dict):
            spec.setdefault("in_channels", n)
    return data


def _predates_location_prior(data: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config without ``lacss.seghead.location_prior`` was trained without the prior: keep it off.

    (A checkpoint's config is complete, so the key is missing only from those written before it
    existed; user config files, sparse, get the default.)
    """
    seghead = data.get("lacss", {}).get("seghead") if isinstance(data.get("lacss"), dict) else None
    if isinstance(seghead, dict):
        seghead.setdefault("location_prior", False)
    return data


def checkpoint_config_data(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a checkpoint's ``config.yaml``, in the current layout and with the options it was trained with."""
    file = resolve_checkpoint(path) / CONFIG
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc.__class__.__name__})", path=file) from None
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a YAML mapping", path=file)
    return _predates_location_prior(upgrade_config(data))


def model_config(path: str | os.PathLike) -> Config:
    """The config of a checkpoint's model: the ``model_type`` section of its ``config.yaml``."""
    file = resolve_checkpoint(path) / CONFIG
    data = checkpoint_config_data(path)
    model_type = data.get("model_type", "lacss")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown model_type {model_type!r}; valid: {sorted(MODEL_TYPES)}", path=file)
    return MODEL_TYPES[model_type][0].from_dict(data.get(model_type))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> SegmentationModel:
    """Rebuild the model of a checkpoint, weights loaded, in eval mode.

    ``model.checkpoint_path`` is the folder it came from; the run's full
    configuration is :func:`lociseg.train.checkpoint.load_experiment_config`.
    """
    folder = resolve_checkpoint(path)
    model = build_model(model_config(folder))
    try:
        state = load_file(str(folder / WEIGHTS), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"cannot read weights ({exc})", path=folder / WEIGHTS) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})", path=folder
        )
    model.checkpoint_path = folder
    return model.to(device).eval()

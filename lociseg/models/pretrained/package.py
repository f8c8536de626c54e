"""Copy a trained checkpoint into the shipped-model registry, with its card and hash.

Used by ``benchmarks/package_model.py RUN_DIR NAME``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from ...errors import ConfigError, InputError
from ...io.files import atomic_write, sha256_file
from ..checkpoint import resolve_checkpoint
from . import MANIFEST, REGISTRY, WEIGHTS

__all__ = ["package_model", "render_model_card", "MAX_BYTES"]

MAX_BYTES = 16 * 1024 * 1024  # keeps the wheel small; larger models belong in a download
# size_model.json: the one-pass size regression (lociseg.predict.size_model), when fitted
FILES = ("model.safetensors", "config.yaml", "metrics.json", "size_model.json")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def render_model_card(
    name: str,
    sha256: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    *,
    description: str = "",
    command: str = "",
    size: int = 0,
) -> str:
    """The ``MODEL_CARD.md`` text: front matter (name, sha256, channels) then prose and tables.

    Metrics are listed flattened (``split.metric``); scalar entries only.
    """
    model_type = config.get("model_type", "lacss")
    model_cfg = config.get(model_type, {}) if isinstance(config.get(model_type), dict) else {}
    inp = model_cfg.get("input", {}) if isinstance(model_cfg, dict) else {}
    data = config.get("data", {})
    channels = inp.get("channels") or data.get("channels") or []
    rows = [(k, v) for k, v in _flatten(metrics).items() if isinstance(v, (int, float)) or v is None]
    metric_lines = (
        "\n".join(f"| {k} | {'n/a' if v is None else (f'{v:.4g}' if isinstance(v, float) else v)} |" for k, v in rows)
        or "| (none recorded) | |"
    )
    return f"""---
name: {name}
sha256: {sha256}
channels: {json.dumps(list(channels))}
target_diameter: {inp.get("target_diameter", "n/a")}
size_bytes: {size}
---

# lociseg model `{name}`

{description or "No description given."}

## Input

- Channels, in order: {", ".join(channels) or "n/a"}
- Normalisation: percentiles {inp.get("normalize_low", "n/a")}–{inp.get("normalize_high", "n/a")} per channel
- Images are rescaled so that cells are {inp.get("target_diameter", "n/a")} px across (pass `--diameter`)

## Training

- Architecture: `{model_type}` ({json.dumps({k: v for k, v in model_cfg.items() if k != "input"}, default=str)[:300]})
- Training data: {", ".join(data.get("train", [])) or "n/a"}
- Annotations: {", ".join(data.get("annotations", [])) or "ground-truth labels"}
- Validation data: {", ".join(data.get("val", [])) or "n/a"}
- Command: `{command or "lociseg train ... (not recorded)"}`

## Metrics on held-out splits

| metric | value |
|---|---|
{metric_lines}

## Limitations and licence

Trained on the data sets above; check their licences before commercial use
(BBBC018 is CC BY-NC-SA 3.0). Expect lower accuracy on other stains,
magnifications or cell types; check a few images by eye (`lociseg demo`).
"""


def package_model(
    run_dir: str | os.PathLike,
    name: str,
    *,
    registry: str | os.PathLike | None = None,
    description: str = "",
    command: str = "",
    max_bytes: int = MAX_BYTES,
    overwrite: bool = False,
) -> Path:
    """Copy a checkpoint into ``<registry>/<name>/``, write its card and record it in the manifest.

    Parameters
    ----------
    run_dir : path-like
        A checkpoint folder, or a run folder with ``best/`` or ``last/``.
    name : str
        Registry name (``nuclei``, ``cells``...).
    registry : path-like, optional
        Default: the package's ``lociseg/models/pretrained``.
    description, command : str
        For the model card (what it is for; the ``lociseg train`` command).
    max_bytes : int
        Refuse larger weights files.
    overwrite : bool
        Replace an existing model of that name.

    Returns
    -------
    Path
        The new model folder.
    """
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"model name {name!r} must be letters, digits, '-' or '_'")
    src = resolve_checkpoint(run_dir)
    root = Path(registry or REGISTRY)
    dest = root / name
    size = (src / WEIGHTS).stat().st_size
    if size > max_bytes:
        raise InputError(
            f"weights are {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit for shipped models",
            path=src / WEIGHTS,
        )
    if dest.exists() and not overwrite:
        raise ConfigError(f"model {name!r} exists in {root} (pass overwrite=True / --overwrite)")
    config = yaml.safe_load((src / "config.yaml").read_text()) or {}
    metrics_path = src / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    digest: list[str] = []

    def write(tmp: Path) -> None:
        tmp.mkdir()
        for f in FILES:
            if (src / f).is_file():
                shutil.copy2(src / f, tmp / f)
        digest.append(sha256_file(tmp / WEIGHTS))
        card = render_model_card(name, digest[0], config, metrics, description=description, command=command, size=size)
        (tmp / "MODEL_CARD.md").write_text(card)

    root.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, write, overwrite=overwrite)
    sha = digest[0]
    model_type = config.get("model_type", "lacss")
    inp = (config.get(model_type) or {}).get("input", {}) if isinstance(config.get(model_type), dict) else {}
    manifest_path = root / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"format": 1, "models": {}}
    manifest.setdefault("models", {})[name] = {
        "file": f"{name}/{WEIGHTS}",
        "sha256": sha,
        "size": size,
        "channels": list(inp.get("channels") or config.get("data", {}).get("channels") or []),
        "description": description,
        "model_type": model_type,
        "target_diameter": inp.get("target_diameter"),
    }
    atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n", overwrite=True)
    return dest

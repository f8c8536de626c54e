"""Models shipped with lociseg, found by name.

Each model is a checkpoint folder ``<registry>/<name>/`` (``model.safetensors``,
``config.yaml``, ``metrics.json``, ``MODEL_CARD.md``) listed in
``<registry>/manifest.json`` with the SHA-256 of its weights, so a damaged or
swapped file is refused with a clear message instead of producing garbage.

>>> from lociseg.models.pretrained import available_models, resolve_model
>>> sorted(available_models())                          # doctest: +SKIP
['cells', 'nuclei']
>>> resolve_model("nuclei")                             # doctest: +SKIP
PosixPath('.../lociseg/models/pretrained/nuclei')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError, InputError
from ...io.files import sha256_file

__all__ = [
    "REGISTRY",
    "ModelEntry",
    "read_manifest",
    "available_models",
    "resolve_model",
    "verify_model",
    "pick_default_model",
]

REGISTRY = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
DEFAULT_BY_CHANNELS = {1: "nuclei", 2: "cells"}


@dataclass
class ModelEntry:
    """One manifest record.

    Attributes
    ----------
    name : str
    file : str
        Weights file, relative to the registry (``<name>/model.safetensors``).
    sha256 : str
        Hex digest of the weights file.
    channels : list of str
        Input channels, in order (e.g. ``["actin", "DNA"]``).
    description : str
    size : int
        Bytes of the weights file.
    extra : dict
        Anything else the manifest holds (target diameter, metrics...).
    """

    name: str
    file: str
    sha256: str
    channels: list[str]
    description: str = ""
    size: int = 0
    extra: dict = field(default_factory=dict)


def read_manifest(registry: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """The models listed in ``<registry>/manifest.json`` (empty when there is none).

    Raises
    ------
    InputError
        The manifest exists but is not valid JSON of the expected layout.
    """
    path = Path(registry or REGISTRY) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        out = {}
        for name, rec in data.get("models", {}).items():
            rec = dict(rec)
            known = {k: rec.pop(k) for k in ("file", "sha256", "channels", "description", "size") if k in rec}
            out[name] = ModelEntry(name=name, extra=rec, **known)
        return out
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"damaged model manifest ({exc})", path=path) from None


def available_models(registry: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Listed models whose weights file is present (not verified: see :func:`verify_model`)."""
    root = Path(registry or REGISTRY)
    return {k: e for k, e in read_manifest(root).items() if (root / e.file).is_file()}


def verify_model(path: str | os.PathLike, expected_sha256: str | None = None) -> str:
    """Check a model folder's weights against its recorded SHA-256.

    Parameters
    ----------
    path : path-like
        A model folder (or its ``model.safetensors``).
    expected_sha256 : str, optional
        Digest to compare with; by default the one in the folder's
        ``MODEL_CARD.md`` front matter (``sha256: ...``) or, for a registry
        model, in the manifest.

    Returns
    -------
    str
        The file's digest.

    Raises
    ------
    InputError
        The weights are missing, or their digest differs (a corrupt,
        truncated or replaced file).
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise InputError(f"no {WEIGHTS} in the model folder", path=folder)
    if expected_sha256 is None:
        expected_sha256 = _recorded_sha256(folder)
    if expected_sha256 is None:
        raise InputError("no recorded sha256 to check the weights against (MODEL_CARD.md or manifest)", path=folder)
    digest = sha256_file(weights)
    if digest != expected_sha256.lower():
        raise InputError(
            f"weights are corrupt or were replaced: sha256 {digest[:12]}... differs from the recorded "
            f"{expected_sha256[:12]}... (reinstall lociseg or re-download the model)",
            path=weights,
        )
    return digest


def _recorded_sha256(folder: Path) -> str | None:
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        for line in card.read_text().splitlines():
            if line.strip().startswith("sha256:"):
                return line.split(":", 1)[1].strip()
    for entry in read_manifest(folder.parent).values():
        if (folder.parent / entry.file).resolve() == (folder / WEIGHTS).resolve():
            return entry.sha256
    return None


def resolve_model(name: str, *, registry: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """The folder of a shipped model, its weights checked.

    Parameters
    ----------
    name : str
        A name from :func:`available_models` (e.g. ``"nuclei"``, ``"cells"``).
    registry : path-like, optional
        Registry folder (default: the one inside the package).
    verify : bool
        Check the weights' SHA-256 against the manifest.

    Raises
    ------
    ConfigError
        No model of that name (the message lists the available ones).
    InputError
        The weights file is missing or corrupt.
    """
    root = Path(registry or REGISTRY)
    models = read_manifest(root)
    if name not in models:
        names = ", ".join(sorted(models)) or "none installed"
        raise ConfigError(f"no shipped model named {name!r} (available: {names})")
    entry = models[name]
    weights = root / entry.file
    if not weights.is_file():
        raise InputError(f"model {name!r} is listed but its weights are missing", path=weights)
    if verify:
        verify_model(weights.parent, entry.sha256)
    return weights.parent


def pick_default_model(n_channels: int) -> str:
    """Name of the default model for images with ``n_channels`` channels.

    One channel (a nuclear stain) -> ``"nuclei"``; two (cytoplasm + nuclei)
    -> ``"cells"``.
    """
    if n_channels not in DEFAULT_BY_CHANNELS:
        raise ConfigError(
            f"no default model for {n_channels}-channel images: pick 1 channel (nuclei) or 2 (cytoplasm, nuclei) "
            "with --channels, or pass --model"
        )
    return DEFAULT_BY_CHANNELS[n_channels]

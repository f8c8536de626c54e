"""``lociseg doctor``: what is installed, which device is used, whether the shipped models load, where the data is."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import typer

# optional package -> (import name, the extra that provides it)
OPTIONAL = {
    "zarr": "export",
    "ome-zarr": "export",
    "roifile": "export",
    "shapely": "export",
    "onnx": "export",
    "onnxruntime": "export",
    "matplotlib": "dev",
    "napari": "napari",
    "npe2": "napari",
    "magicgui": "napari",
    "dask": "dask",
}


@dataclass
class Check:
    """One line of the report: ``status`` is ``ok``, ``warn`` (works, something optional missing) or ``fail``."""

    section: str
    name: str
    status: str
    detail: str


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> list[Check]:
    """Python, core and optional package versions."""
    from .. import __version__

    out = [
        Check("versions", "python", "ok", f"{platform.python_version()} ({sys.executable})"),
        Check("versions", "platform", "ok", platform.platform()),
        Check("versions", "lociseg", "ok", __version__),
    ]
    for dist in ("torch", "numpy", "scipy", "scikit-image", "tifffile", "safetensors", "pycocotools"):
        v = _version(dist)
        out.append(Check("versions", dist, "ok" if v else "fail", v or "not installed (required)"))
    for dist, extra in OPTIONAL.items():
        v = _version(dist)
        out.append(
            Check("optional", dist, "ok" if v else "warn", v or f"not installed (pip install 'lociseg[{extra}]')")
        )
    return out


def check_devices() -> list[Check]:
    """CUDA / MPS availability and what ``--device auto`` picks."""
    import torch

    from ..device import choose_device, mps_available

    out = []
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        out.append(
            Check("device", "cuda", "ok", f"{torch.cuda.device_count()} device(s): {names}; CUDA {torch.version.cuda}")
        )
    else:
        why = "torch built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        out.append(Check("device", "cuda", "warn", f"not available ({why})"))
    if mps_available():
        out.append(Check("device", "mps", "ok", "available"))
    auto = choose_device("auto").type
    out.append(Check("device", "auto", "ok", f"{auto} (torch threads: {torch.get_num_threads()})"))
    return out


def check_models(registry: Path | None = None, load: bool = True) -> list[Check]:
    """Each shipped model: present, hash matches, and (``load``) builds from its checkpoint."""
    from ..errors import LociError
    from ..models.pretrained import DEFAULT_BY_CHANNELS, read_manifest, resolve_model

    out = []
    try:
        listed = read_manifest(registry)
    except LociError as exc:
        return [Check("models", "manifest", "fail", str(exc))]
    for name in sorted(set(listed) | set(DEFAULT_BY_CHANNELS.values())):
        if name not in listed:
            out.append(Check("models", name, "warn", "default model not shipped in this install (use --model PATH)"))
            continue
        try:
            folder = resolve_model(name, registry=registry)
            detail = f"sha256 ok ({listed[name].sha256[:12]}...)"
            if load:
                from ..models.checkpoint import load_checkpoint

                model = load_checkpoint(folder)
                n = sum(p.numel() for p in model.parameters())
                detail += f", loads ({n / 1e6:.2f} M parameters)"
            out.append(Check("models", name, "ok", detail))
        except LociError as exc:
            out.append(Check("models", name, "fail", str(exc)))
        except Exception as exc:  # a model that cannot be rebuilt is exactly what doctor must report
            out.append(Check("models", name, "fail", f"does not load: {type(exc).__name__}: {exc}"))
    return out


def check_data() -> list[Check]:
    """Whether the shared data root is found, and which data sets it holds."""
    from ..data import default_data_root
    from ..errors import LociError

    try:
        root = default_data_root()
    except LociError as exc:
        return [Check("data", "root", "warn", str(exc))]
    if not root.is_dir():
        return [Check("data", "root", "warn", f"{root} does not exist (from $LOCISEG_DATA)")]
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    return [Check("data", "root", "ok", f"{root}: {', '.join(found) or 'empty'}")]


def main(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    no_load: bool = typer.Option(False, "--no-load", help="Check model hashes only, do not build the models."),
) -> int:
    """Check the installation: versions, optional extras, GPU, shipped models (hash + load) and data root.

    Exits 1 when something required is broken (missing package, corrupt model), 0 otherwise.
    """
    checks = check_versions() + check_devices() + check_models(load=not no_load) + check_data()
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        section = None
        for c in checks:
            if c.section != section:
                section = c.section
                typer.echo(f"{section}:")
            typer.echo(f"  [{mark[c.status]}] {c.name:<14} {c.detail}")
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        typer.echo(f"{len(failed)} problem(s): " + "; ".join(f"{c.section}/{c.name}" for c in failed), err=True)
        raise typer.Exit(1)
    return 0

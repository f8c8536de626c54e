"""Writing a segmentation's outputs (label image, cell table, JSON sidecar) and checking they are complete."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io import write_labels
from ..io.files import atomic_write, sha256_file
from .table import TABLE_COLUMNS, CellTable

#: Ending of the JSON sidecar: distinctive, so napari offers lociseg's reader for lociseg's sidecars only.
SIDECAR = ".lociseg.json"
#: Ending of the sidecar an earlier lociseg wrote (``<name>.json``); still read, replaced by ``overwrite``.
OLD_SIDECAR = ".json"
#: Endings of the files :func:`write_outputs` writes per image (the sidecar last), and the earlier sidecar.
OUTPUT_SUFFIXES = (".tif", ".csv", SIDECAR, OLD_SIDECAR)


def write_outputs(
    out_dir: str | os.PathLike,
    name: str,
    labels: np.ndarray,
    table: CellTable,
    meta: dict | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``<name>.tif`` (labels), ``<name>.csv`` (cell table) and ``<name>.lociseg.json`` (metadata) atomically.

    The JSON sidecar is written last and records the size and SHA-256 of the
    other two (key ``"outputs"``), so :func:`outputs_complete` can tell a
    finished set from one a crash, a full disk or a copy cut short. With
    ``overwrite``, an earlier lociseg's ``<name>.json`` sidecar of the set
    being replaced goes too.

    Parameters
    ----------
    out_dir : path-like
        Created when missing.
    name : str
        Base name of the three files.
    labels : (H, W) int ndarray
    table : CellTable
    meta : dict, optional
        Extra metadata merged over ``table.meta`` (e.g. the input path).
    overwrite : bool
        Replace existing files; otherwise an existing one is an :class:`InputError`.

    Returns
    -------
    dict
        ``{"labels": Path, "table": Path, "meta": Path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out / f"{name}.tif", "table": out / f"{name}.csv", "meta": out / f"{name}{SIDECAR}"}
    if not overwrite:
        for p in (*paths.values(), out / f"{name}{OLD_SIDECAR}"):  # before anything is written: no partial set
            if os.path.lexists(p):
                raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=p)
    else:
        remove_sidecars(out, name)  # until the new sidecar is in place, the set is incomplete
    atomic_write(paths["labels"], lambda p: write_labels(p, labels), overwrite=overwrite)
    atomic_write(paths["table"], table.to_csv, overwrite=overwrite)
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in (paths["labels"], paths["table"])}
    info = {
        **table.meta,
        **(meta or {}),
        "lociseg_version": __version__,
        "columns": list(TABLE_COLUMNS),
        "outputs": files,
    }
    atomic_write(paths["meta"], json.dumps(info, indent=1, default=str) + "\n", overwrite=overwrite)
    return paths


def _is_old_sidecar(path: Path, name: str) -> bool:
    """Whether ``path`` (``<name>.json``) is the sidecar an earlier lociseg wrote for ``name``'s outputs."""
    try:
        info = json.loads(path.read_text())
        return "columns" in info and f"{name}.csv" in info.get("outputs", {f"{name}.csv": None})
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def sidecar_path(out_dir: str | os.PathLike, name: str) -> Path:
    """The sidecar of ``name``'s outputs in ``out_dir``: ``<name>.lociseg.json``, or the ``<name>.json``
    an earlier lociseg wrote when only that one is there.
    """
    new, old = Path(out_dir) / f"{name}{SIDECAR}", Path(out_dir) / f"{name}{OLD_SIDECAR}"
    return old if not new.exists() and _is_old_sidecar(old, name) else new


def remove_sidecars(out_dir: str | os.PathLike, name: str) -> None:
    """Remove the sidecar of ``name``'s outputs, and an earlier lociseg's ``<name>.json`` (only one lociseg wrote)."""
    new, old = Path(out_dir) / f"{name}{SIDECAR}", Path(out_dir) / f"{name}{OLD_SIDECAR}"
    if _is_old_sidecar(old, name):
        old.unlink()
    new.unlink(missing_ok=True)


def own_outputs(out_dir: str | os.PathLike) -> set[str]:
    """Names of the files in ``out_dir`` that belong to complete output sets (:func:`outputs_complete`):
    each sidecar and the outputs it lists.
    """
    out = Path(out_dir)
    own: set[str] = set()
    for side in out.glob(f"*{OLD_SIDECAR}"):  # the new sidecars end like the old ones
        name = side.name[: -len(SIDECAR if side.name.endswith(SIDECAR) else OLD_SIDECAR)]
        if sidecar_path(out, name) == side and outputs_complete(out, name):
            own.add(side.name)
            own.update(Path(f).name for f in json.loads(side.read_text()).get("outputs", {}))
    return own


def folder_record(path: str | os.PathLike) -> dict[str, int]:
    """What a sidecar records of an output folder (an OME-Zarr): its number of files and their total size."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return {"files": len(files), "size": sum(p.stat().st_size for p in files)}


def outputs_complete(out_dir: str | os.PathLike, name: str, endings: Sequence[str] | None = None) -> bool:
    """Whether :func:`write_outputs` finished ``name`` in ``out_dir``: the sidecar reads and every
    file it lists has the recorded size and SHA-256 (truncated, replaced or missing files fail).

    ``endings`` are the outputs the sidecar must list besides itself (default
    ``.tif`` and ``.csv``; the block path writes ``.ome.zarr`` and ``.csv``);
    a listed folder must have the recorded number of files and total size
    (:func:`folder_record`).
    """
    out = Path(out_dir)
    endings = (".tif", ".csv") if endings is None else endings
    try:
        files = json.loads(sidecar_path(out, name).read_text()).get("outputs")
        if not isinstance(files, dict) or {f"{name}{e}" for e in endings} - set(files):
            return False
        for fname, rec in files.items():
            p = out / Path(fname).name
            if p.is_dir():
                if folder_record(p) != {"files": rec["files"], "size": rec["size"]}:
                    return False
            elif p.stat().st_size != rec["size"] or sha256_file(p) != rec["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True

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

#: Endings of the files :func:`write_outputs` writes per image; the sidecar (.json) comes last.
OUTPUT_SUFFIXES = (".tif", ".csv", ".json")


def write_outputs(
    out_dir: str | os.PathLike,
    name: str,
    labels: np.ndarray,
    table: CellTable,
    meta: dict | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``<name>.tif`` (labels), ``<name>.csv`` (cell table) and ``<name>.json`` (metadata) atomically.

    The JSON sidecar is written last and records the size and SHA-256 of the
    other two (key ``"outputs"``), so :func:`outputs_complete` can tell a
    finished set from one a crash, a full disk or a copy cut short.

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
    paths = {"labels": out / f"{name}.tif", "table": out / f"{name}.csv", "meta": out / f"{name}.json"}
    if not overwrite:
        for p in paths.values():  # before anything is written, so a refusal leaves no partial set
            if os.path.lexists(p):
                raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=p)
    elif paths["meta"].exists():
        paths["meta"].unlink()  # until the new sidecar is in place, the set is incomplete
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
        files = json.loads((out / f"{name}.json").read_text()).get("outputs")
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

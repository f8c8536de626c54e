"""GUI-free logic of the napari plugin: reading lociseg outputs, editing weak annotations."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..predict.channels import stain_kind
from ..predict.outputs import OLD_SIDECAR, SIDECAR, sidecar_path

__all__ = [
    "AnnotationEdit",
    "assign_layers",
    "channel_sources",
    "model_inputs",
    "optional_inputs",
    "holds_run",
    "is_lociseg_output",
    "labels_features",
    "list_annotations",
    "load_annotation",
    "next_free_folder",
    "read_output",
    "safe_name",
    "save_annotation",
]


def model_inputs(model: str) -> list[str]:
    """Names of a model's input channels, in its order (``["actin", "DNA"]``); ``channel k`` when unnamed.

    Reads only the model's configuration (no weights).
    """
    from ..models.checkpoint import model_config
    from ..models.pretrained import resolve_model

    path = model if Path(model).exists() else resolve_model(model)
    spec = model_config(path).input
    names = [str(c) for c in (spec.channels or [])]
    return names if len(names) == int(spec.in_channels) else [f"channel {k}" for k in range(int(spec.in_channels))]


def optional_inputs(model: str) -> list[str]:
    """Names of the inputs a model can do without (``["nucleus"]`` for ``cells``): a zero plane feeds them.

    Reads only the model's configuration (no weights).
    """
    from ..models.checkpoint import model_config
    from ..models.pretrained import resolve_model

    path = model if Path(model).exists() else resolve_model(model)
    return [str(c) for c in model_config(path).input.optional]


def channel_sources(layers: Mapping[str, np.ndarray]) -> dict[str, tuple[str, int | None]]:
    """What can feed a model input: each 2-D layer, and each channel of a (C, H, W) layer of at most 8 channels.

    Returns ``choice text -> (layer name, channel or None)``.
    """
    out: dict[str, tuple[str, int | None]] = {}
    for name, data in layers.items():
        shape = np.shape(data)
        if len(shape) == 2:
            out[name] = (name, None)
        elif len(shape) == 3 and shape[0] <= 8:
            out.update({f"{name} [{c}]": (name, c) for c in range(shape[0])})
    return out


def assign_layers(inputs: list[str], choices: list[str], optional: Sequence[str] = ()) -> list[str | None]:
    """A choice per model input, by name: the layer whose name says the input's stain (DNA/Hoechst/DAPI ->
    nucleus, actin/phalloidin -> cytoplasm, or the input's own name); the rest in order, never one twice.

    An ``optional`` input (one the model can do without) is filled last, and only by a layer whose name
    says no other stain: a phase-contrast layer alone feeds the cell input of ``cells`` and leaves its
    nuclear input empty (zeros); two unnamed layers feed both inputs in order.
    """
    spare = {o.lower() for o in optional}
    picked: list[str | None] = [None] * len(inputs)
    for i, inp in enumerate(inputs):
        kind = stain_kind(inp)
        for c in choices:
            if c in picked:
                continue
            if c.lower().startswith(inp.lower()) or (kind is not None and stain_kind(c) == kind):
                picked[i] = c
                break
    for i in range(len(inputs)):
        if picked[i] is None and inputs[i].lower() not in spare:
            picked[i] = next((c for c in choices if c not in picked and stain_kind(c) is None), None) or next(
                (c for c in choices if c not in picked), None
            )
    for i in range(len(inputs)):
        if picked[i] is None and inputs[i].lower() in spare:
            picked[i] = next((c for c in choices if c not in picked and stain_kind(c) is None), None)
    return picked


def holds_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a model or run (training, adapt, fine-tuning) that starting a new one there would replace."""
    from ..train.run_control import held_run

    return bool(held_run(folder, "adapt.json", "finetune.json"))


def next_free_folder(parent: str | os.PathLike, stem: str) -> Path:
    """``parent/stem-1``, or the first ``stem-k`` after it that does not exist (so nothing is replaced)."""
    k = 1
    while (Path(parent) / f"{stem}-{k}").exists():
        k += 1
    return Path(parent) / f"{stem}-{k}"


def safe_name(name: str) -> str:
    """A layer name as a file name: runs of characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "image"


def labels_features(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A cell table as napari Labels ``features``: an ``index`` column ties each row to its label.

    Without ``index``, napari shows row ``i`` for label ``i`` (row 0 on the
    background, row ``k`` on cell ``k``, nothing on the last cell).
    """
    cols = {k: np.asarray(v) for k, v in columns.items()}
    if "label" not in cols:
        raise InputError(f"cell table has no 'label' column (columns: {', '.join(cols) or 'none'})")
    return {"index": cols["label"].astype(np.int64), **cols}


def _output_of(path: Path) -> tuple[Path, str] | None:
    """The folder and name of the lociseg output set ``path`` would belong to (by its ending), or None."""
    low = path.name.lower()
    end = next((e for e in (SIDECAR, OLD_SIDECAR, ".tif", ".tiff", ".csv") if low.endswith(e)), None)
    return None if end is None else (path.parent, path.name[: -len(end)])


def is_lociseg_output(path: str | os.PathLike) -> bool:
    """True for the files ``lociseg segment`` writes: the sidecar (``<name>.lociseg.json``, or the
    ``<name>.json`` of an earlier lociseg), or a ``.tif``/``.csv`` beside one.

    A sidecar counts only with its label TIFF beside it.
    """
    p = Path(path)
    found = _output_of(p)
    if found is None:
        return False
    side = sidecar_path(*found)
    if not side.is_file() or (p.suffix.lower() == ".json" and (side != p or _label_tiff(*found) is None)):
        return False
    try:
        return "columns" in json.loads(side.read_text())
    except ValueError:
        return False


def _label_tiff(folder: Path, name: str) -> Path | None:
    return next((folder / f"{name}{s}" for s in (".tif", ".tiff") if (folder / f"{name}{s}").is_file()), None)


def read_output(path: str | os.PathLike) -> list[tuple]:
    """Napari layer data tuples for a lociseg output.

    The sidecar or the label TIFF becomes a Labels layer (cell table as
    ``features``), the CSV a Points layer of cell centroids (with the table
    as features).
    """
    from ..io import read_labels

    p = Path(path)
    found = _output_of(p)
    if found is None:
        raise InputError("not a lociseg output (a .lociseg.json sidecar, its label TIFF or cell table)", path=p)
    folder, name = found
    label_tif = _label_tiff(folder, name)
    if p.suffix.lower() != ".csv" and label_tif is None:
        raise InputError("no label TIFF beside the lociseg sidecar", path=p)
    meta = json.loads(sidecar_path(folder, name).read_text())
    table = {}
    csv = folder / f"{name}.csv"
    if csv.is_file():
        arr = np.genfromtxt(csv, delimiter=",", names=True, ndmin=1)
        table = {k: np.asarray(arr[k]) for k in (arr.dtype.names or ())}
    if p.suffix.lower() == ".csv":
        pts = np.stack([table.get("centroid_y", []), table.get("centroid_x", [])], 1) if table else np.zeros((0, 2))
        return [(pts, {"name": f"{name} cells", "features": table, "size": 6, "metadata": meta}, "points")]
    features = labels_features(table) if table else {}
    return [(read_labels(label_tif), {"name": f"{name} labels", "features": features, "metadata": meta}, "labels")]


@dataclass
class AnnotationEdit:
    """One image's weak annotation as the review widget edits it."""

    name: str
    points: np.ndarray  # (N, 2) y, x
    candidates: np.ndarray  # (K, H, W) bool
    chosen_index: int
    auto_index: int


def list_annotations(directory: str | os.PathLike) -> list[str]:
    """Image names annotated in a ``lociseg annotate`` output folder (with stored candidates)."""
    d = Path(directory)
    return sorted(p.name[: -len(".candidates.npz")] for p in d.glob("*.candidates.npz"))


def load_annotation(directory: str | os.PathLike, name: str) -> AnnotationEdit:
    """Points, the foreground candidates and the current choice of one image."""
    from ..annotate.sheet import read_choices
    from ..annotate.store import read_annotation, read_candidates

    points, fg = read_annotation(directory, name)
    cands = read_candidates(directory, name)
    row = read_choices(Path(directory) / "choices.csv").get(name)
    if row is not None:
        chosen, auto = int(row["chosen_index"]), int(row["auto_index"])
    else:  # no choices.csv row: the stored foreground is the chosen one
        match = [k for k in range(len(cands)) if np.array_equal(cands[k], fg)]
        chosen = auto = match[0] if match else 0
    return AnnotationEdit(name, points, cands, chosen, auto)


def save_annotation(directory: str | os.PathLike, edit: AnnotationEdit) -> None:
    """Write the edited points and chosen foreground where ``lociseg annotate``/training read them.

    The chosen index also goes into ``choices.csv``, so a later
    ``lociseg annotate`` run keeps the person's choice.
    """
    from ..annotate.sheet import read_choices, write_choices
    from ..annotate.store import write_annotation

    d = Path(directory)
    k = int(edit.chosen_index)
    if not 0 <= k < len(edit.candidates):
        raise InputError(f"candidate {k} out of range 0..{len(edit.candidates) - 1}", path=d)
    pts = np.asarray(edit.points, np.float32).reshape(-1, 2)
    meta_path = d / f"{edit.name.replace(os.sep, '__').replace('/', '__')}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update(chosen_index=k, edited_in="napari")
    write_annotation(d, edit.name, pts, edit.candidates[k], meta, candidates=edit.candidates)
    rows = read_choices(d / "choices.csv")
    row = rows.get(edit.name, {"name": edit.name, "auto_index": edit.auto_index, "threshold": ""})
    row.update(chosen_index=k, n_points=len(pts))
    rows[edit.name] = row
    write_choices(d / "choices.csv", list(rows.values()))

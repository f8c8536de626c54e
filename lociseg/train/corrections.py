"""Fine-tuning an adapted model on a person's corrections (the napari Correct and Fine-tune steps).

A person paints or erases cells on the adapted model's result;
:func:`corrections_from_edit` turns the edit into corrected cells and the
pixels they reviewed, and :func:`finetune_on_corrections` trains on them as
full labels, the rest of each image as the adapt run had it (or weak).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from ..annotate import read_annotation, read_cells
from ..data import Sample
from ..errors import InputError
from ..io.files import atomic_write
from .adapt import Callback, _config, _load, _read_json, _segment, _step_hook, _write_json
from .loop import train

log = logging.getLogger("lociseg.adapt")

__all__ = ["corrections_from_edit", "paste_corrections", "finetune_on_corrections"]


def corrections_from_edit(model_labels: np.ndarray, edited: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells a person corrected in a model's label image, and the pixels they reviewed.

    A cell counts as corrected when its pixels differ from the model's: a
    new id (painted on background, or a split's new half), a cell that grew
    or shrank, and a cell part of which another cell took (the other half of
    a split, a neighbour painted over). Pixels changed to 0 (erased cells,
    trimmed edges) are reviewed background. Cells left as the model drew
    them are not corrections.

    Parameters
    ----------
    model_labels, edited : (H, W) int arrays
        The model's output and the same image after editing.

    Returns
    -------
    corrected : (H, W) int32
        The corrected cells with their ids in ``edited``, 0 elsewhere.
    reviewed : (H, W) bool
        The corrected cells' pixels and every changed pixel.
    """
    before, after = np.asarray(model_labels), np.asarray(edited)
    if before.shape != after.shape:
        raise InputError(f"edited labels are {after.shape}, the model's {before.shape}")
    changed = before != after
    present = np.unique(after)
    touched = np.union1d(after[changed], before[changed])
    ids = np.intersect1d(touched[touched > 0], present)
    corrected = np.where(np.isin(after, ids), after, 0).astype(np.int32)
    return corrected, changed | (corrected > 0)


def paste_corrections(target: np.ndarray, corrected: np.ndarray, reviewed: np.ndarray) -> np.ndarray:
    """``target`` with the reviewed pixels replaced by the corrected cells (ids after ``target``'s)."""
    out = np.where(np.asarray(reviewed, bool), 0, target).astype(np.int32)
    ids = np.unique(corrected[corrected > 0])
    lut = np.zeros(int(corrected.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1) + int(target.max())
    return np.where(corrected > 0, lut[corrected], out)


def finetune_on_corrections(
    images: Sequence[tuple[str, np.ndarray]],
    corrections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    adapted: str | os.PathLike,
    out: str | os.PathLike,
    *,
    init: str | os.PathLike | None = None,
    minutes: float = 5.0,
    steps: int | None = None,
    lr: float = 2e-4,
    overwrite: bool = False,
    device: str = "auto",
    threads: int = 0,
    progress: bool = True,
    callback: Callback | None = None,
    rest: Literal["targets", "weak"] = "targets",
) -> dict[str, Any]:
    """Fine-tune on a person's corrections: corrected cells as full labels, the rest as the adapt run had it, or weak.

    Parameters
    ----------
    images : sequence of (name, (2, H, W) array)
        Images of an :func:`adapt_model` run under their names there, as
        (nucleus, cytoplasm).
    corrections : mapping name -> (corrected, reviewed)
        Of some of those images (:func:`corrections_from_edit`); the others
        train as ``rest`` says (with none at all, this is the fine-tuning
        without corrections: a control).
    adapted : path
        The :func:`adapt_model` run folder: its ``adapt.json`` (channels),
        ``annotations/`` (machine points, foreground and cells: the weak
        part) and model.
    out : path
        New run folder (the fine-tuned model, ``corrections/`` with what it
        was trained on, ``segmentation/``).
    init : path, optional
        Model to start from (default: ``adapted``), e.g. an earlier round.
    minutes, steps, lr, overwrite, device, threads, progress, callback
        As in :func:`adapt_model`.
    rest : {"targets", "weak"}
        What the rest of each image trains on: ``targets``, the adapt run's
        targets with the corrections pasted in (:func:`paste_corrections`),
        all supervised as ``adapt`` trained; ``weak``, the machine points
        and foreground (the weak loss; the corrected cells through
        :attr:`lociseg.data.Sample.corrected`), which on BBBC018 cost the
        uncorrected images about 0.09 F1 at IoU 0.75 (BENCHMARKS.md,
        "Fine-tuning on corrections").

    Returns
    -------
    dict
        ``train`` (what :func:`lociseg.train.train` returned), ``interrupted``
        and ``samples`` (per image ``name``, ``labels``, ``table``, ...).
    """
    adapted, out = Path(adapted), Path(out)
    info = _read_json(adapted / "adapt.json")
    if not info.get("trained"):
        raise InputError("not a finished adapt run (no adapt.json with a trained model)", path=adapted)
    unknown = sorted(set(corrections) - {name for name, _ in images})
    if unknown:
        raise InputError(f"corrections of images not given: {', '.join(unknown)}")
    held = [out / n for n in ("best", "last", "log.csv", "finetune.json") if (out / n).exists()]
    if held and not overwrite:
        raise InputError("holds a fine-tuning run already; choose another folder or overwrite it", path=out)
    (out / "corrections").mkdir(parents=True, exist_ok=True)
    nucleus, cytoplasm, order = info["nucleus"], info["cytoplasm"], info["model_channels"]
    ann_dir = adapted / "annotations"
    start = str(init or adapted)
    samples, found = [], []
    for item in images:
        name, image = _load(item, [0, 1])
        if not (ann_dir / f"{name}.targets.tif").is_file():
            raise InputError(f"{name}: not one of the adapt run's images", path=ann_dir)
        points, foreground = read_annotation(ann_dir, name)
        corrected, reviewed = corrections.get(name, (None, None))
        if corrected is not None:
            corrected = np.asarray(corrected, np.int32)
            reviewed = np.asarray(reviewed, bool)
            for kind, arr in (("corrected", corrected), ("reviewed", reviewed.astype(np.uint8))):
                atomic_write(
                    out / "corrections" / f"{name}.{kind}.tif",
                    lambda p, a=arr: tifffile.imwrite(p, a, compression="zlib"),
                    overwrite=True,
                )
        target = tifffile.imread(ann_dir / f"{name}.targets.tif").astype(np.int32)
        if rest == "targets":
            labels = target if corrected is None else paste_corrections(target, corrected, reviewed)
            samples.append(Sample(image[order], labels=labels, name=name))
        else:
            samples.append(
                Sample(
                    image[order],
                    points=points,
                    foreground=foreground,
                    cells=read_cells(ann_dir, name),
                    corrected=corrected,
                    reviewed=reviewed,
                    name=name,
                )
            )
        found.append({"name": name, "image": image, "target": target})
    if rest == "targets":  # as adapt trained: each image at its labels' scale
        config = _config(start, order, nucleus, cytoplasm, minutes, steps, lr, threads).override({"init": start})
    else:
        config = _config(start, order, nucleus, cytoplasm, minutes, steps, lr, threads, mode="weak").override(
            {"init": start, "data.diameter": float(info["train"]["diameter"])}
        )
    trained = train(
        config,
        out,
        train_samples=samples,
        device=device,
        overwrite=overwrite,
        progress=progress,
        on_step=_step_hook(callback),
    )
    trained = {k: v for k, v in trained.items() if k in ("step", "diameter", "seconds", "interrupted")}
    _write_json(
        out / "finetune.json",
        {"adapted": str(adapted), "init": start, "rest": rest, "corrected": sorted(corrections), "train": trained},
    )
    result = {"train": trained, "interrupted": trained["interrupted"], "samples": found}
    if not trained["interrupted"]:
        result["interrupted"] = _segment(out, found, order, device, progress, callback, overwrite)
    return result

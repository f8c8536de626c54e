"""Fine-tuning an adapted model on a person's corrections (the napari Correct and Fine-tune steps).

A person paints or erases cells on the adapted model's result;
:func:`corrections_from_edit` turns the edit into corrected cells and the
pixels they reviewed, and :func:`finetune_on_corrections` trains on them as
full labels, the rest of each image as the adapt run had it (or weak).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from ..annotate import image_sources, read_annotation, read_cells
from ..data import Sample
from ..errors import InputError
from ..io.files import atomic_write
from .finetune import AdaptSample, Callback, finetune_config, read_record, run_training, segment_stage, write_record
from .run_control import refuse_held_run

__all__ = ["FinetuneRun", "corrections_from_edit", "paste_corrections", "finetune_on_corrections"]


@dataclass
class FinetuneRun:
    """What :func:`finetune_on_corrections` did.

    Attributes
    ----------
    samples : list of AdaptSample
        Per image its name, image, targets and, once segmented, ``labels`` and ``table``.
    train : dict
        What :func:`~lociseg.train.finetune.run_training` returned.
    interrupted : str or None
        Signal name, ``"cancelled"`` or None.
    """

    samples: list[AdaptSample]
    train: dict[str, Any]
    interrupted: str | None = None


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
) -> FinetuneRun:
    """Fine-tune on a person's corrections: corrected cells as full labels, the rest as the adapt run had it, or weak.

    Parameters
    ----------
    images : sequence of (name, (2, H, W) array)
        Images of an :func:`~lociseg.train.adapt.adapt_model` run under
        their names there, as (nucleus, cytoplasm).
    corrections : mapping name -> (corrected, reviewed)
        Of some of those images (:func:`corrections_from_edit`); the others
        train as ``rest`` says (with none at all, this is the fine-tuning
        without corrections: a control).
    adapted : path
        The adapt run folder: its ``adapt.json`` (channels),
        ``annotations/`` (machine points, foreground and cells: the weak
        part; targets) and model.
    out : path
        New run folder (the fine-tuned model, ``corrections/`` with what it
        was trained on, ``segmentation/``).
    init : path, optional
        Model to start from (default: ``adapted``), e.g. an earlier round.
    minutes, steps, lr, overwrite, device, threads, progress, callback
        As in :class:`~lociseg.train.adapt.AdaptOptions` (this run cannot be resumed).
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
    FinetuneRun
    """
    adapted, out = Path(adapted), Path(out)
    info = read_record(adapted / "adapt.json")
    if not info.get("trained"):
        raise InputError("not a finished adapt run (no adapt.json with a trained model)", path=adapted)
    unknown = sorted(set(corrections) - {name for name, _ in images})
    if unknown:
        raise InputError(f"corrections of images not given: {', '.join(unknown)}")
    refuse_held_run(
        out, "a fine-tuning run already", resume=False, overwrite=overwrite, resumable=False, records=("finetune.json",)
    )
    order, start = info["model_channels"], str(init or adapted)
    found, samples = _samples(images, corrections, adapted / "annotations", out / "corrections", order, rest)
    config = finetune_config(
        start,
        order,
        info["nucleus"],
        info["cytoplasm"],
        minutes=minutes,
        steps=steps,
        lr=lr,
        threads=threads,
        mode="supervised" if rest == "targets" else "weak",
    )
    if rest == "weak":  # no labels to measure the scale on: the adapt run's training scale
        config = config.override({"data.diameter": float(info["train"]["diameter"])})
    trained = run_training(
        config, out, samples, device=device, resume=False, overwrite=overwrite, progress=progress, callback=callback
    )
    record = {"adapted": str(adapted), "init": start, "rest": rest, "corrected": sorted(corrections), "train": trained}
    write_record(out / "finetune.json", record)
    run = FinetuneRun(found, trained, trained["interrupted"])
    if not run.interrupted:
        run.interrupted = segment_stage(
            out, found, order, device=device, progress=progress, callback=callback, overwrite=overwrite
        )
    return run


def _samples(
    images: Sequence[tuple[str, np.ndarray]],
    corrections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ann_dir: Path,
    saved: Path,
    order: list[int],
    rest: str,
) -> tuple[list[AdaptSample], list[Sample]]:
    """Each image as a run sample and as a training sample; the corrections saved in ``saved``."""
    saved.mkdir(parents=True, exist_ok=True)
    found, samples = [], []
    for src in image_sources(list(images), [0, 1])[0]:
        name, image = src.name, src.load().image
        if not (ann_dir / f"{name}.targets.tif").is_file():
            raise InputError(f"{name}: not one of the adapt run's images", path=ann_dir)
        corrected, reviewed = corrections.get(name, (None, None))
        if corrected is not None:
            corrected, reviewed = np.asarray(corrected, np.int32), np.asarray(reviewed, bool)
            for kind, arr in (("corrected", corrected), ("reviewed", reviewed.astype(np.uint8))):
                atomic_write(
                    saved / f"{name}.{kind}.tif",
                    lambda p, a=arr: tifffile.imwrite(p, a, compression="zlib"),
                    overwrite=True,
                )
        target = tifffile.imread(ann_dir / f"{name}.targets.tif").astype(np.int32)
        found.append(AdaptSample(name, image, target))
        if rest == "targets":
            labels = target if corrected is None else paste_corrections(target, corrected, reviewed)
            samples.append(Sample(image[order], labels=labels, name=name))
            continue
        points, foreground = read_annotation(ann_dir, name)
        cells = read_cells(ann_dir, name)
        samples.append(
            Sample(
                image[order],
                points=points,
                foreground=foreground,
                cells=cells,
                corrected=corrected,
                reviewed=reviewed,
                name=name,
            )
        )
    return found, samples

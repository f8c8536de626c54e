"""Adapt a trained model to unlabelled images, in stages with typed records.

:func:`adapt_model` is the work behind ``lociseg adapt`` (whose report page
:func:`lociseg.report.adapt.adapt` writes after it) and the napari *Adapt*
widget. Its stages, each a function of its own:

1. :func:`annotate_stage`: machine annotations of every image at its own
   scale (:func:`lociseg.annotate.annotate_folder`, whose one rule refuses
   an image that cannot be used);
2. :func:`targets_stage`: the training targets, the starting model's cells
   and the machine cells combined as ``targets`` says (:data:`TARGETS`);
3. :func:`train_stage`: supervised fine-tuning from the model's weights
   (:func:`lociseg.train.finetune.run_training`);
4. :func:`~lociseg.train.finetune.segment_stage`: segmentation of each
   image at its training scale;
5. :func:`~lociseg.train.finetune.report_stage`: the label-free quality
   of each result, and the images to look at first, in ``adapt.json``.

Fine-tuning on a person's corrections of the result is
:func:`lociseg.train.corrections.finetune_on_corrections`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from ..annotate import FolderAnnotation, annotate_folder, image_sources, merge_cells, update_annotation_meta
from ..annotate.evidence import AGREEMENT_MIN, choose_targets, stain_maps
from ..errors import ConfigError, InputError, describe_error
from ..io.files import atomic_write
from ..metrics import match_instances
from ..models.pretrained import resolve_model
from ..predict.api import OUTPUT_SUFFIXES, Segmenter, load_model, own_outputs
from ..predict.selftrain import cells_from_model, model_channel_order
from .finetune import (
    AdaptSample,
    Callback,
    cancelled,
    finetune_config,
    read_record,
    report_stage,
    run_training,
    segment_stage,
    write_record,
)
from .run_control import refuse_held_run

__all__ = [
    "AGREEMENT_MIN",
    "TARGETS",
    "AdaptOptions",
    "AdaptRun",
    "adapt_model",
    "agreement",
    "check_adapt_options",
    "annotate_stage",
    "choose_lead",
    "targets_stage",
    "train_stage",
]

#: How the training targets are drawn: the machine cells alone, the starting
#: model's cells alone, or one of them with the other's cells it missed added
#: (:func:`~lociseg.annotate.merge_cells`). ``model+machine`` keeps the
#: model's outlines and the annotation's extra cells; ``auto`` chooses per
#: image between ``model+machine`` and ``machine+model`` (:func:`choose_lead`);
#: ``evidence`` (the default) leads as ``auto`` and then chooses cell by cell
#: from label-free evidence (:func:`lociseg.annotate.evidence.choose_targets`:
#: a cell only the model found is kept only when it holds a detected nucleus);
#: measured in ``benchmarks/bench_target_signals.py``.
TARGETS = ("evidence", "auto", "machine", "model", "model+machine", "machine+model")


@dataclass(frozen=True)
class AdaptOptions:
    """The settings of an :func:`adapt_model` run (recorded in ``adapt.json``).

    Attributes
    ----------
    nucleus, cytoplasm : str or int
        Channels by name or index (indices for in-memory images).
    minutes : float
        Wall-clock budget of the fine-tuning (the learning rate anneals to it).
    init : str
        Starting model: a shipped name (``cells``, ``nuclei``) or a
        checkpoint / run folder.
    targets : str
        One of :data:`TARGETS` (``evidence``, the default: per image the
        lead of :func:`choose_lead`, then per cell
        :func:`lociseg.annotate.evidence.choose_targets`; ``auto``: the
        lead only).
    steps : int, optional
        Cap on the training steps (tests, quick looks).
    lr : float
        Peak learning rate (fine-tuning: lower than from scratch).
    resume : bool
        Go on from what an interrupted run left: stored annotations and
        targets are reused and training continues from ``last/``.
    overwrite : bool
        Start again in a folder that holds a run.
    device : str
    threads : int
        torch CPU threads (0: torch's default).
    progress : bool
        Progress bars on the terminal.
    callback : callable, optional
        ``callback(stage, fraction)``
        (:data:`~lociseg.train.finetune.Callback`); True cancels: the run
        stops as after Ctrl-C (``interrupted`` is ``"cancelled"``), and what
        is done is kept for ``resume``.
    """

    nucleus: str | int = "DNA"
    cytoplasm: str | int = "actin"
    minutes: float = 15.0
    init: str = "cells"
    targets: Literal["evidence", "auto", "machine", "model", "model+machine", "machine+model"] = "evidence"
    steps: int | None = None
    lr: float = 5e-4
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    threads: int = 0
    progress: bool = True
    callback: Callback | None = field(default=None, compare=False)

    def record(self) -> dict[str, Any]:
        """The settings ``adapt.json`` keeps."""
        keys = ("init", "nucleus", "cytoplasm", "targets", "minutes", "steps", "lr")
        return {k: getattr(self, k) for k in keys}


@dataclass
class AdaptRun:
    """What :func:`adapt_model` did.

    Attributes
    ----------
    samples : list of AdaptSample
        The images used, with their machine cells, targets and (once
        segmented) labels, cell table and estimated quality.
    skipped : dict
        Name -> why an image was not used.
    info : dict
        What ``adapt.json`` holds.
    start : Segmenter
        The starting model.
    train : dict or None
        What :func:`~lociseg.train.finetune.run_training` returned.
    interrupted : str or None
        Signal name, ``"cancelled"`` or None.
    """

    samples: list[AdaptSample]
    skipped: dict[str, str]
    info: dict[str, Any]
    start: Segmenter
    train: dict[str, Any] | None = None
    interrupted: str | None = None

    @property
    def images(self) -> list[str]:
        """The names of the images used."""
        return [s.name for s in self.samples]


def check_adapt_options(minutes: float, steps: int | None, targets: str) -> None:
    """Refuse settings :func:`adapt_model` cannot run with (before any work).

    Raises
    ------
    ConfigError
        Naming the option.
    """
    if not minutes > 0:
        raise ConfigError(f"--minutes must be positive, got {minutes}")
    if steps is not None and steps < 1:
        raise ConfigError(
            f"--steps must be at least 1, got {steps} (to segment with the starting model: lociseg segment)"
        )
    if targets not in TARGETS:
        raise ConfigError(f"--targets must be one of {', '.join(TARGETS)}, got {targets!r}")


def adapt_model(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]],
    out: str | os.PathLike,
    *,
    sheets: str | os.PathLike | None = None,
    **options: Any,
) -> AdaptRun:
    """Fine-tune a model on machine annotations of ``images`` and segment them with the result.

    Parameters
    ----------
    images : sequence of path or (name, (C, H, W) array)
        Image files (``nucleus``/``cytoplasm`` pick their channels) or
        in-memory images (``nucleus``/``cytoplasm`` are then indices).
    out : path
        Folder: the run (``best/`` = the adapted model, ``last/``,
        ``log.csv``, ``config.yaml``), ``annotations/`` (machine
        annotations, targets), ``segmentation/`` (labels, tables),
        ``adapt.json`` (settings, images skipped and why, results).
    sheets : path, optional
        Folder for each image's contact sheet of foreground candidates.
    **options
        The fields of :class:`AdaptOptions` (``nucleus``, ``cytoplasm``,
        ``minutes``, ``init``, ``targets``, ``steps``, ``lr``, ``resume``,
        ``overwrite``, ``device``, ``threads``, ``progress``, ``callback``).

    Returns
    -------
    AdaptRun

    Raises
    ------
    ConfigError
        A setting it cannot run with (:func:`check_adapt_options`).
    InputError
        No usable image, or a run in ``out`` without ``resume``/``overwrite``.
    """
    opts = AdaptOptions(**options)
    check_adapt_options(opts.minutes, opts.steps, opts.targets)
    out = Path(out)
    sources, _ = image_sources(images, [opts.nucleus, opts.cytoplasm])
    _check_out(out, [s.name for s in sources], opts)
    init_path = opts.init if Path(opts.init).exists() else str(resolve_model(opts.init))
    seg = load_model(init_path, device=opts.device)
    order, _ = model_channel_order(seg, opts.nucleus, opts.cytoplasm)
    t0 = time.perf_counter()
    annotated = annotate_stage(sources, out / "annotations", opts, sheets)
    samples, skipped, interrupted = targets_stage(annotated, out / "annotations", seg, order, opts)
    run = AdaptRun(samples, skipped, {**opts.record(), "model_channels": order}, seg, interrupted=interrupted)
    run.info.update(images=run.images, skipped=skipped, annotate_seconds=round(time.perf_counter() - t0, 1))
    if run.interrupted:
        write_record(out / "adapt.json", {**run.info, "interrupted": run.interrupted})
        return run
    if not samples:
        raise InputError("no usable image (" + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")", path=out)
    run.train = train_stage(out, samples, init_path, order, opts)
    if run.train.get("interrupted"):
        write_record(out / "adapt.json", {**run.info, "train": run.train, "trained": False})
        run.interrupted = run.train.get("interrupted")
        return run
    run.info.update(train=run.train, trained=True)
    write_record(out / "adapt.json", run.info)
    # a run folder with outputs got this far only with resume or overwrite: its segmentation is replaced
    run.interrupted = segment_stage(
        out,
        samples,
        order,
        device=opts.device,
        progress=opts.progress,
        callback=opts.callback,
        overwrite=opts.overwrite or opts.resume,
    )
    if not run.interrupted:
        run.info.update(report_stage(samples))
        write_record(out / "adapt.json", run.info)
    return run


def annotate_stage(
    sources: Sequence, ann_dir: Path, opts: AdaptOptions, sheets: str | os.PathLike | None
) -> FolderAnnotation:
    """Stage 1: machine annotations of every image into ``ann_dir`` (the first half of the ``annotate`` progress).

    With ``resume`` an image whose annotation is stored is read back, not redone.
    """
    return annotate_folder(
        sources,
        ann_dir,
        nucleus=opts.nucleus,
        cytoplasm=opts.cytoplasm,
        sheets=sheets,
        reuse=opts.resume,
        keep_arrays=True,
        progress=opts.progress,
        cancel=lambda f: cancelled(opts.callback, "annotate", f / 2),
    )


def targets_stage(
    annotated: FolderAnnotation, ann_dir: Path, seg: Segmenter, order: list[int], opts: AdaptOptions
) -> tuple[list[AdaptSample], dict[str, str], str | None]:
    """Stage 2: each annotated image's training targets (``ann_dir/<name>.targets.tif``, the second half of ``annotate``).

    Returns the samples, the images skipped (name -> reason: refused by the
    annotation, or no targets) and the interruption (``"SIGINT"``,
    ``"cancelled"`` or None). With ``resume`` stored targets are read back.
    """
    samples: list[AdaptSample] = []
    skipped = dict(annotated.refused)
    done = annotated.annotated
    if annotated.interrupted:
        return samples, skipped, annotated.interrupted
    try:
        for k, rec in enumerate(done):
            if cancelled(opts.callback, "annotate", 0.5 + k / (2 * len(done))):
                return samples, skipped, "cancelled"
            sample = AdaptSample(
                rec.name,
                rec.image,
                target=rec.cells,
                machine=rec.cells,
                points=rec.points,
                annotation_diameter=rec.diameter,
            )
            try:
                stored = _stored_targets(ann_dir, rec.name, opts.resume)
                sample.target = _draw_targets(sample, ann_dir, seg, order, opts.targets) if stored is None else stored
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - as the annotation's rule: one image must not stop the others
                skipped[rec.name] = describe_error(exc)
                continue
            samples.append(sample)
    except KeyboardInterrupt:
        return samples, skipped, "SIGINT"
    return samples, skipped, None


def _stored_targets(ann_dir: Path, name: str, resume: bool) -> np.ndarray | None:
    path = ann_dir / f"{name}.targets.tif"
    return tifffile.imread(path).astype(np.int32) if resume and path.is_file() else None


def _draw_targets(sample: AdaptSample, ann_dir: Path, seg: Segmenter, order: list[int], mode: str) -> np.ndarray:
    """A sample's targets, written with the mode used and the model/machine agreement (in its ``meta.json``)."""
    target, used, agree = _targets(
        sample.image, sample.machine, seg, order, mode, sample.points, sample.annotation_diameter
    )
    update_annotation_meta(
        ann_dir, sample.name, {"targets": used, "agreement": None if agree is None else round(agree, 3)}
    )
    atomic_write(
        ann_dir / f"{sample.name}.targets.tif",
        lambda p, t=target: tifffile.imwrite(p, t.astype(np.uint32), compression="zlib"),
        overwrite=True,
    )
    return target


def train_stage(out: Path, samples: list[AdaptSample], init_path: str, order: list[int], opts: AdaptOptions) -> dict:
    """Stage 3: fine-tune the model of ``init_path`` on the samples' targets into ``out``.

    With ``resume``: a finished training (``adapt.json``) is not redone, an
    interrupted one goes on from ``last/``.
    """
    previous = read_record(out / "adapt.json")
    if opts.resume and previous.get("trained"):
        return previous["train"]
    config = finetune_config(
        init_path,
        order,
        opts.nucleus,
        opts.cytoplasm,
        minutes=opts.minutes,
        steps=opts.steps,
        lr=opts.lr,
        threads=opts.threads,
    )
    go_on = opts.resume and (out / "last").is_dir()
    return run_training(
        config,
        out,
        ([s.image[order] for s in samples], [s.target for s in samples]),
        device=opts.device,
        resume=go_on,
        overwrite=not go_on and (opts.overwrite or opts.resume),
        progress=opts.progress,
        callback=opts.callback,
    )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """F1 at IoU 0.5 between two label images of the same cells (1.0 when both are empty)."""
    return float(match_instances(a, b, thresholds=[0.5]).f1[0])


def choose_lead(own: np.ndarray, machine: np.ndarray) -> tuple[str, float]:
    """Whose outlines lead an image's targets: ``model+machine`` or ``machine+model``, and the agreement.

    Where the starting model and the annotation find mostly the same cells
    (F1@0.5 between them at least :data:`AGREEMENT_MIN`), the model knows
    these cells and its outlines lead. Where they disagree on most cells, the
    model has not learnt cells like these (a cell line it never saw), and the
    annotation, made from the image itself, leads; no label is needed to
    decide. Measured in BENCHMARKS.md (``lociseg adapt``).
    """
    agree = agreement(machine, own)
    return ("model+machine" if agree >= AGREEMENT_MIN else "machine+model"), agree


def _targets(
    image: np.ndarray,
    machine: np.ndarray,
    seg: Segmenter,
    order: list[int],
    mode: str,
    points: np.ndarray | None = None,
    diameter: float | None = None,
) -> tuple[np.ndarray, str, float | None]:
    """An image's training targets, the mode used (``auto`` resolved) and the model/machine agreement."""
    if mode == "machine":
        return machine, mode, None
    own, _ = cells_from_model(image, seg, channels=order, fill=None)
    agree = None
    if mode == "evidence":
        target, counts = choose_targets(own, machine, stain_maps(image[1], diameter), points)
        return target, f"evidence ({counts['lead']} leads, {counts['dropped']} dropped)", counts["agreement"]
    if mode == "auto":
        mode, agree = choose_lead(own, machine)
    if mode == "model":
        return own, mode, agree
    if mode == "model+machine":
        return merge_cells(own, machine), mode, agree
    return merge_cells(machine, own), mode, agree


def _check_out(out: Path, names: Sequence[str], opts: AdaptOptions) -> None:
    """Refuse an adapt folder that holds a run without resume/overwrite, a corrupt record, or files not ours."""
    refuse_held_run(out, "an adapt run already", resume=opts.resume, overwrite=opts.overwrite, records=("adapt.json",))
    if opts.resume and not opts.overwrite:
        read_record(out / "adapt.json")  # a corrupt record is an error before anything runs, never "no run yet"
        _check_own_outputs(out / "segmentation", names)  # resume replaces lociseg's own outputs, nothing else


def _check_own_outputs(folder: Path, names: Sequence[str]) -> None:
    """Refuse when an output of ``names`` in ``folder`` exists but is not a complete one lociseg wrote there.

    What the segmentation of a resumed run replaces must be lociseg's own,
    unchanged since (its sidecar's sizes and checksums): a file a person put
    there or edited is kept, and the run stops before changing anything.

    Raises
    ------
    InputError
        Such a file, named, with the way out.
    """
    if not folder.is_dir():
        return
    own = own_outputs(folder)
    for p in (folder / f"{n}{suffix}" for n in names for suffix in OUTPUT_SUFFIXES):
        if os.path.lexists(p) and p.name not in own:
            raise InputError(
                "is not an output lociseg wrote there, or was changed since; a resumed run would replace it: "
                "move it away, or start again with --overwrite",
                path=p,
            )

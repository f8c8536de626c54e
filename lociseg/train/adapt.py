"""Adapt a trained model to unlabelled images, then fine-tune it on a person's corrections.

:func:`adapt_model` is the work behind ``lociseg adapt`` (whose report page
:func:`lociseg.report.adapt.adapt` adds) and the napari *Adapt* widget:
machine annotations at each image's own scale
(:func:`lociseg.annotate.annotate_image` with
:func:`~lociseg.annotate.estimate_cell_scale`), the starting model's cells
merged with them as targets (:func:`lociseg.predict.selftrain.cells_from_model`),
supervised fine-tuning from the model's weights (:func:`lociseg.train.train`
with ``init``) and segmentation at each image's training scale.

:func:`finetune_on_corrections` is the human-in-the-loop step after it: the
cells a person corrected on the result (:func:`corrections_from_edit`) are
full labels, the rest of each image trains on the adapt run's targets or
stays weak (its machine points and foreground), and training starts from
the adapted model.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from ..annotate import (
    annotate_image,
    estimate_cell_scale,
    merge_cells,
    read_annotation,
    read_cells,
    write_annotation,
    write_contact_sheet,
)
from ..annotate.evidence import AGREEMENT_MIN, choose_targets, review_order, stain_maps
from ..annotate.evidence import quality_estimate as _quality
from ..config import to_dict
from ..errors import InputError, LociError
from ..io import read_image
from ..io.files import atomic_write, image_stem
from ..metrics import match_instances
from ..models.checkpoint import model_config
from ..models.pretrained import resolve_model
from ..predict.api import OUTPUT_SUFFIXES, Segmenter, load_model, own_outputs, write_outputs
from ..predict.selftrain import cells_from_model
from ..transforms import diameter_from_labels
from .config import ExperimentConfig
from .loop import train

__all__ = [
    "TARGETS",
    "adapt_model",
    "assess_samples",
    "sample_quality",
]

log = logging.getLogger("lociseg.adapt")

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

#: Images flagged for a person to look at first: the lowest estimated quality, this fraction of them (at least one).
REVIEW_FRACTION = 0.2

#: ``callback(stage, fraction)`` with stage ``annotate``, ``train`` or
#: ``segment`` and the fraction of that stage done; returning True cancels.
Callback = Callable[[str, float], bool | None]

_MIN_NUCLEI = 3  # fewer nucleus-sized spots give no scale and nothing to learn from


def _load(item: str | os.PathLike | tuple[str, np.ndarray], chans: list) -> tuple[str, np.ndarray]:
    """(name, (2, H, W) nucleus, cytoplasm) of a file or a (name, (C, H, W) array) pair."""
    if isinstance(item, tuple):
        name, image = item
        image = np.asarray(image)
        if image.ndim != 3 or max(c for c in chans if isinstance(c, int)) >= image.shape[0]:
            raise InputError(f"{name}: needs a (C, H, W) array with channels {chans}, got shape {image.shape}")
        return name, image[chans]
    return image_stem(item, suffixes=()), read_image(item, channels=chans)


def _check(image: np.ndarray) -> float:
    """The annotation diameter of a (nucleus, cytoplasm) image; InputError for images nothing can be learnt from."""
    for k, what in enumerate(("nuclear", "cytoplasm")):
        if not np.isfinite(image[k]).all() or np.ptp(image[k]) == 0:
            raise InputError(f"the {what} channel is blank (one value everywhere)")
    diameter, n = estimate_cell_scale(image[0])
    if n < _MIN_NUCLEI or not np.isfinite(diameter):
        raise InputError(f"no nuclei found in the nuclear channel ({n} nucleus-like spot(s))")
    return diameter


def _model_order(seg: Segmenter, nucleus: str | int, cytoplasm: str | int) -> list[int]:
    """Indices into (nucleus, cytoplasm) in the model's order (by name, else cytoplasm first as lociseg's configs)."""
    n = seg.spec.in_channels
    if n == 1:
        return [0]
    names = [str(nucleus).strip().lower(), str(cytoplasm).strip().lower()]
    wanted = [str(c).strip().lower() for c in seg.spec.channels]
    if len(wanted) == 2 and all(c in names for c in wanted):
        return [names.index(c) for c in wanted]
    return [1, 0]


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


def _cancelled(callback: Callback | None, stage: str, fraction: float) -> bool:
    return callback is not None and bool(callback(stage, min(1.0, max(0.0, fraction))))


def _step_hook(callback: Callback | None) -> Callable[[dict], bool] | None:
    """The training loop's ``on_step`` as a ``train`` stage of ``callback`` (steps or the time budget, whichever ends first)."""
    if callback is None:
        return None

    def hook(s: dict) -> bool:
        budget = s["budget_seconds"]
        return _cancelled(callback, "train", max(s["step"] / s["steps"], s["seconds"] / budget if budget > 0 else 0.0))

    return hook


def adapt_model(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]],
    out: str | os.PathLike,
    *,
    nucleus: str | int = "DNA",
    cytoplasm: str | int = "actin",
    minutes: float = 15.0,
    init: str = "cells",
    targets: Literal["evidence", "auto", "machine", "model", "model+machine", "machine+model"] = "evidence",
    steps: int | None = None,
    lr: float = 5e-4,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    threads: int = 0,
    progress: bool = True,
    sheets: str | os.PathLike | None = None,
    callback: Callback | None = None,
) -> dict[str, Any]:
    """Fine-tune ``init`` on machine annotations of ``images`` and segment them with the result.

    Parameters
    ----------
    images : sequence of path or (name, (C, H, W) array)
        Image files (``nucleus``/``cytoplasm`` pick their channels) or
        in-memory images (``nucleus``/``cytoplasm`` are then indices).
    out : path
        Folder: the run (``best/`` = the adapted model, ``last/``,
        ``log.csv``, ``config.yaml``), ``annotations/`` (machine cells,
        targets), ``segmentation/`` (labels, tables), ``adapt.json``
        (settings, images skipped and why, results).
    nucleus, cytoplasm : str or int
        Channels by name or index.
    minutes : float
        Wall-clock budget of the fine-tuning (the learning rate anneals to it).
    init : str
        Starting model: a shipped name (``cells``, ``nuclei``) or a
        checkpoint / run folder.
    targets : str
        One of :data:`TARGETS` (``evidence``, the default: per image the lead
        of :func:`choose_lead`, then per cell
        :func:`lociseg.annotate.evidence.choose_targets`; ``auto``: the lead
        only).
    steps : int, optional
        Cap on the training steps (tests, quick looks).
    lr : float
        Peak learning rate (fine-tuning: lower than from scratch).
    resume : bool
        Go on from what an interrupted run left: stored annotations are
        reused and training continues from ``last/``.
    overwrite : bool
        Start again in a folder that holds a run.
    device : str
    threads : int
        torch CPU threads (0: torch's default).
    progress : bool
        Progress bars on the terminal.
    sheets : path, optional
        Folder for each image's contact sheet of foreground candidates.
    callback : callable, optional
        ``callback(stage, fraction)`` (:data:`Callback`); True cancels: the
        run stops as after Ctrl-C (``interrupted`` is ``"cancelled"``), and
        what is done is kept for ``resume``.

    Returns
    -------
    dict
        ``images`` (names used), ``skipped`` (name -> reason), ``train``
        (what :func:`lociseg.train.train` returned), ``interrupted`` (signal
        name, ``"cancelled"`` or None), ``info`` (what ``adapt.json``
        holds), ``start`` (the starting :class:`~lociseg.predict.api.Segmenter`)
        and ``samples``: per image ``name``, ``image`` (nucleus, cytoplasm),
        ``machine`` cells, training ``target``, the final ``labels`` and
        cell ``table`` (the last two once segmented).

    Raises
    ------
    InputError
        No usable image, or a run in ``out`` without ``resume``/``overwrite``.
    """
    if targets not in TARGETS:
        raise InputError(f"targets must be one of {TARGETS}, got {targets!r}")
    out = Path(out)
    _check_out(out, images, resume=resume, overwrite=overwrite)
    ann_dir = out / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    if sheets is not None:
        Path(sheets).mkdir(parents=True, exist_ok=True)
    init_path = init if Path(init).exists() else str(resolve_model(init))
    seg = load_model(init_path, device=device)
    order = _model_order(seg, nucleus, cytoplasm)
    chans = [nucleus, cytoplasm]

    t0 = time.perf_counter()
    names, samples, skipped, interrupted = _annotate_images(
        images, chans, ann_dir, seg, order, targets, resume=resume, sheets=sheets, progress=progress, callback=callback
    )
    info: dict[str, Any] = {
        "init": init,
        "nucleus": nucleus,
        "cytoplasm": cytoplasm,
        "targets": targets,
        "minutes": minutes,
        "steps": steps,
        "lr": lr,
        "model_channels": order,
        "images": names,
        "skipped": skipped,
        "annotate_seconds": round(time.perf_counter() - t0, 1),
    }
    result: dict[str, Any] = {
        "images": names,
        "skipped": skipped,
        "train": None,
        "interrupted": interrupted,
        "info": info,
        "start": seg,
        "samples": samples,
    }
    if interrupted:
        _write_json(out / "adapt.json", {**info, "interrupted": interrupted})
        return result
    if not samples:
        raise InputError("no usable image (" + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")", path=out)

    config = _config(init_path, order, nucleus, cytoplasm, minutes, steps, lr, threads).override({"init": init_path})
    previous = _read_json(out / "adapt.json")
    if resume and previous.get("trained"):
        trained = previous["train"]
    else:
        go_on = resume and (out / "last").is_dir()
        trained = train(
            config,
            out,
            train_samples=([s["image"][order] for s in samples], [s["target"] for s in samples]),
            device=device,
            resume=go_on,
            overwrite=not go_on and (overwrite or resume),
            progress=progress,
            on_step=_step_hook(callback),
        )
        trained = {k: v for k, v in trained.items() if k in ("step", "diameter", "seconds", "interrupted")}
        result.update(train=trained)
        if trained["interrupted"]:
            _write_json(out / "adapt.json", {**info, "train": trained, "trained": False})
            return {**result, "interrupted": trained["interrupted"]}
    info.update(train=trained, trained=True)
    result.update(train=trained)
    _write_json(out / "adapt.json", info)
    # a run folder with outputs got this far only with resume or overwrite: its segmentation is replaced
    result["interrupted"] = _segment(out, samples, order, device, progress, callback, overwrite or resume)
    if not result["interrupted"]:
        info.update(assess_samples(samples))
        _write_json(out / "adapt.json", info)
    return result


def _annotate_images(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]],
    chans: list[str | int],
    ann_dir: Path,
    seg: Segmenter,
    order: list[int],
    targets: str,
    *,
    resume: bool,
    sheets: str | os.PathLike | None,
    progress: bool,
    callback: Callback | None,
) -> tuple[list[str], list[dict], dict[str, str], str | None]:
    """Stage 1 of :func:`adapt_model`: machine annotations and training targets of every image.

    Returns the names used, their samples, the skipped images (name -> reason)
    and the interruption (``"SIGINT"``, ``"cancelled"`` or None). With
    ``resume`` an image whose targets are stored is read back, not redone.
    """
    from tqdm import tqdm

    names, samples, skipped = [], [], {}
    interrupted = None
    try:
        for k, item in enumerate(tqdm(images, desc="annotate", unit="image", disable=not progress or None)):
            if _cancelled(callback, "annotate", k / max(1, len(images))):
                interrupted = "cancelled"
                break
            name = str(item[0]) if isinstance(item, tuple) else image_stem(item, suffixes=())
            try:
                sample = _annotate_one(item, chans, ann_dir, seg, order, targets, resume=resume, sheets=sheets)
            except (LociError, OSError, ValueError) as exc:
                skipped[name] = str(exc)
                log.warning("%s skipped: %s", name, exc)
                continue
            names.append(sample["name"])
            samples.append(sample)
    except KeyboardInterrupt:
        interrupted = "SIGINT"
    return names, samples, skipped, interrupted


def _annotate_one(
    item: str | os.PathLike | tuple[str, np.ndarray],
    chans: list[str | int],
    ann_dir: Path,
    seg: Segmenter,
    order: list[int],
    targets: str,
    *,
    resume: bool,
    sheets: str | os.PathLike | None,
) -> dict:
    """One image's sample: its machine cells and training target (stored in ``ann_dir``, or read back)."""
    nucleus, cytoplasm = chans
    name, image = _load(item, chans)
    target_file = ann_dir / f"{name}.targets.tif"
    if resume and target_file.is_file():
        cells, target = read_cells(ann_dir, name), tifffile.imread(target_file).astype(np.int32)
        points = read_annotation(ann_dir, name)[0]
        return {"name": name, "image": image, "machine": cells, "target": target, "points": points}
    diameter = _check(image)
    ann = annotate_image(image[0], image[1], diameter=diameter)
    if ann.cells is None or ann.cells.max() == 0:
        raise InputError("the annotation found no cells")
    target, used, agree = _targets(image, ann.cells, seg, order, targets, ann.points, diameter)
    meta = {
        "nucleus": nucleus,
        "cytoplasm": cytoplasm,
        "diameter": round(diameter, 2),
        "auto_index": ann.auto_index,
        "targets": used,
        "agreement": None if agree is None else round(agree, 3),
    }
    write_annotation(ann_dir, name, ann.points, ann.foreground, meta, cells=ann.cells)
    if sheets is not None:
        write_contact_sheet(
            Path(sheets) / f"{name}.png",
            image,
            ann.candidates,
            ann.points,
            ann.chosen_index,
            auto=ann.auto_index,
            cells=ann.cells,
        )
    atomic_write(
        target_file,
        lambda p, t=target: tifffile.imwrite(p, t.astype(np.uint32), compression="zlib"),
        overwrite=True,
    )
    return {"name": name, "image": image, "machine": ann.cells, "target": target, "points": ann.points}


def assess_samples(samples: list[dict]) -> dict[str, Any]:
    """The label-free quality of the segmented samples, and the images a person should look at first.

    Returns
    -------
    dict
        ``quality`` (name -> what :func:`sample_quality` put in each sample)
        and ``look_first`` (the lowest :data:`REVIEW_FRACTION` by estimated
        quality, worst first).
    """
    quality = {s["name"]: s["quality"] for s in samples if s.get("quality")}
    return {"quality": quality, "look_first": review_order(quality, REVIEW_FRACTION)}


def sample_quality(sample: dict) -> dict[str, float] | None:
    """:func:`lociseg.annotate.evidence.quality_estimate` of a sample's ``labels`` against its machine cells (rounded).

    None for a sample without machine cells (the corrections fine-tuning).
    """
    if sample.get("machine") is None or sample.get("labels") is None:
        return None
    maps = stain_maps(sample["image"][1], sample.get("diameter"))
    q = _quality(sample["labels"], sample["machine"], maps, sample.get("points"))
    return {k: round(v, 3) for k, v in q.items()}


def _check_out(out: Path, images: Sequence, *, resume: bool, overwrite: bool) -> None:
    """Refuse an adapt folder that holds a run without --resume/--overwrite, a corrupt record, or files not ours."""
    held = [out / n for n in ("best", "last", "log.csv", "adapt.json") if (out / n).exists()]
    if held and not (resume or overwrite):
        raise InputError(
            "holds an adapt run already; use --resume to go on, --overwrite to start again, or another -o", path=out
        )
    if resume and not overwrite:
        _read_json(out / "adapt.json")  # a corrupt record is an error before anything runs, never "no run yet"
        # resume replaces lociseg's own outputs, nothing else
        _check_own_outputs(
            out / "segmentation", [str(i[0]) if isinstance(i, tuple) else image_stem(i, suffixes=()) for i in images]
        )


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


def _segment(
    run: Path,
    samples: list[dict],
    order: list[int],
    device: str,
    progress: bool,
    callback: Callback | None,
    overwrite: bool,
) -> str | None:
    """Segment each sample with the model of ``run`` at its training scale into ``run/segmentation``.

    Returns ``"cancelled"`` when ``callback`` cancels (the images done are kept), else None.
    """
    from tqdm import tqdm

    model = load_model(run, device=device)
    for k, s in enumerate(tqdm(samples, desc="segment", unit="image", disable=not progress or None)):
        if _cancelled(callback, "segment", k / len(samples)):
            return "cancelled"
        # The image's own scale as the model was trained on it (its targets' median cell size): on the
        # labelled sets closer than the scale search (BENCHMARKS.md, "lociseg adapt").
        d = diameter_from_labels(s["target"])
        s["diameter"] = float(d) if np.isfinite(d) and d > 0 else None
        with warnings.catch_warnings():  # the diameter used is in each image's .json and the report
            warnings.filterwarnings("ignore", message="cell diameter estimated")
            s["labels"], s["table"] = model.segment(s["image"], channels=order, diameter=s["diameter"])
        meta: dict[str, Any] = {"model": str(run)}
        s["quality"] = sample_quality(s)
        if s["quality"]:  # the label-free estimate, as in adapt.json
            meta["quality"] = s["quality"]
        write_outputs(run / "segmentation", s["name"], s["labels"], s["table"], meta, overwrite=overwrite)
    _cancelled(callback, "segment", 1.0)
    return None


def _config(
    init_path: str,
    order: list[int],
    nucleus,
    cytoplasm,
    minutes: float,
    steps: int | None,
    lr: float,
    threads: int,
    mode: Literal["supervised", "weak"] = "supervised",
) -> ExperimentConfig:
    """Fine-tuning of the model of ``init_path`` (its own settings) on in-memory samples.

    ``supervised`` trains on the adapt targets; ``weak`` on machine points
    and foreground plus corrected cells, with the weak terms on from the
    first step (the masks are already trained).
    """
    model = model_config(init_path)
    kind = "lacss" if type(model).__name__.lower().startswith("lacss") else "unet"
    section = to_dict(model)
    if kind == "lacss":
        section["mode"] = mode
        if mode == "weak":
            section["weak"] = {**section.get("weak", {}), "warmup_start": 0, "warmup_steps": 0}
    elif mode != "supervised":
        raise InputError("fine-tuning on corrections needs a LACSS model (U-Nets have no weak mode)")
    names = list(model.input.channels) or [[nucleus, cytoplasm][i] for i in order]
    return ExperimentConfig.from_dict(
        {
            "model_type": kind,
            kind: section,
            "data": {"train": [], "val": [], "channels": names},
            "optim": {
                "lr": lr,
                "warmup_steps": 20,
                "steps": 100_000 if steps is None else steps,
                "budget_minutes": minutes,
                "select_best": False,
                "checkpoint_every": 50,
                "checkpoint_minutes": 1.0,
                "threads": threads,
                "log_every": 5,
            },
        }
    )


def _read_json(path: Path) -> dict:
    """A run's JSON record; {} when there is none yet, an error when it is unreadable (never taken as empty)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable ({exc}); move it away or start again with --overwrite", path=path) from None
    if not isinstance(data, dict):
        raise InputError("is not an adapt record (a JSON object)", path=path)
    return data


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, default=str) + "\n", overwrite=True)

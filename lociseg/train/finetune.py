"""Fine-tuning a trained model on in-memory samples: the pieces ``adapt`` and the corrections fine-tuning share.

The configuration (:func:`finetune_config`, the model's own settings, its
kind from the model registry), training with progress and cancelling
(:func:`run_training`), segmenting the samples with the result
(:func:`segment_stage`), their label-free quality (:func:`report_stage`)
and the run's JSON record (:func:`read_record`, :func:`write_record`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from ..annotate.evidence import quality_estimate, review_order, stain_maps
from ..config import to_dict
from ..data import Sample
from ..errors import InputError
from ..io.files import atomic_write
from ..models.checkpoint import model_config
from ..models.registry import model_type
from ..predict.api import load_model, write_outputs
from ..predict.selftrain import flipped_view
from ..predict.table import CellTable
from ..transforms import diameter_from_labels
from .config import ExperimentConfig
from .loop import train

__all__ = [
    "REVIEW_FRACTION",
    "AdaptSample",
    "Callback",
    "finetune_config",
    "read_record",
    "report_stage",
    "run_training",
    "sample_quality",
    "segment_stage",
    "write_record",
]

#: ``callback(stage, fraction)`` with stage ``annotate``, ``train`` or
#: ``segment`` and the fraction of that stage done; returning True cancels.
Callback = Callable[[str, float], bool | None]

#: Images flagged for a person to look at first: the lowest estimated quality, this fraction of them (at least one).
REVIEW_FRACTION = 0.2


@dataclass
class AdaptSample:
    """One image of an adapt or fine-tuning run, as it goes through the stages.

    Attributes
    ----------
    name : str
    image : (2, H, W) ndarray
        Nucleus, cytoplasm.
    target : (H, W) int ndarray
        The training targets.
    machine : (H, W) int ndarray or None
        The machine cells (None in the corrections fine-tuning).
    points : (N, 2) ndarray or None
        The machine points.
    annotation_diameter : float or None
        The scale the image was annotated at.
    diameter : float or None
        The scale it was segmented at (its targets' median cell size).
    labels, table
        The final segmentation, once segmented.
    view : (H, W) int ndarray or None
        The same model's cells of the flipped image, mapped back (the
        quality estimate's stability check), once segmented.
    quality : dict or None
        :func:`sample_quality`, once segmented.
    """

    name: str
    image: np.ndarray
    target: np.ndarray
    machine: np.ndarray | None = None
    points: np.ndarray | None = None
    annotation_diameter: float | None = None
    diameter: float | None = None
    labels: np.ndarray | None = None
    table: CellTable | None = None
    view: np.ndarray | None = None
    quality: dict[str, float] | None = None


def cancelled(callback: Callback | None, stage: str, fraction: float) -> bool:
    """Report ``fraction`` of ``stage`` to ``callback``; whether it asks to cancel."""
    return callback is not None and bool(callback(stage, min(1.0, max(0.0, fraction))))


def _step_hook(callback: Callback | None) -> Callable[[dict], bool] | None:
    """The training loop's ``on_step`` as a ``train`` stage of ``callback`` (steps or the time budget, whichever ends first)."""
    if callback is None:
        return None

    def hook(s: dict) -> bool:
        budget = s["budget_seconds"]
        return cancelled(callback, "train", max(s["step"] / s["steps"], s["seconds"] / budget if budget > 0 else 0.0))

    return hook


def finetune_config(
    init_path: str,
    order: list[int],
    nucleus: str | int,
    cytoplasm: str | int,
    *,
    minutes: float,
    steps: int | None,
    lr: float,
    threads: int,
    mode: Literal["supervised", "weak"] = "supervised",
) -> ExperimentConfig:
    """Fine-tuning of the model of ``init_path`` (its own settings, ``init`` set to it) on in-memory samples.

    ``supervised`` trains on targets; ``weak`` on machine points and
    foreground plus corrected cells, with the weak terms on from the first
    step (the masks are already trained). The model's kind comes from the
    model registry (:func:`lociseg.models.registry.model_type`).
    """
    model = model_config(init_path)
    kind = model_type(model)
    section = to_dict(model)
    if kind == "lacss":
        section["mode"] = mode
        if mode == "weak":
            section["weak"] = {**section.get("weak", {}), "warmup_start": 0, "warmup_steps": 0}
    elif mode != "supervised":
        raise InputError("fine-tuning on corrections needs a LACSS model (U-Nets have no weak mode)")
    names = list(model.input.channels) or [[nucleus, cytoplasm][i] for i in order]
    optim = {"lr": lr, "warmup_steps": 20, "steps": 100_000 if steps is None else steps, "budget_minutes": minutes}
    optim.update(select_best=False, checkpoint_every=50, checkpoint_minutes=1.0, threads=threads, log_every=5)
    config = ExperimentConfig.from_dict(
        {"model_type": kind, kind: section, "data": {"train": [], "val": [], "channels": names}, "optim": optim}
    )
    return config.override({"init": init_path})


def run_training(
    config: ExperimentConfig,
    out: Path,
    samples: Sequence[Sample] | tuple[list[np.ndarray], list[np.ndarray]],
    *,
    device: str,
    resume: bool,
    overwrite: bool,
    progress: bool,
    callback: Callback | None,
) -> dict[str, Any]:
    """:func:`lociseg.train.train` on in-memory samples; what the run record keeps of its result.

    Returns
    -------
    dict
        ``step``, ``diameter``, ``seconds`` and ``interrupted`` (signal name,
        ``"cancelled"`` or None).
    """
    trained = train(
        config,
        out,
        train_samples=samples,
        device=device,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        on_step=_step_hook(callback),
    )
    return {k: v for k, v in trained.items() if k in ("step", "diameter", "seconds", "interrupted")}


def segment_stage(
    run: Path,
    samples: list[AdaptSample],
    order: list[int],
    *,
    device: str,
    progress: bool,
    callback: Callback | None,
    overwrite: bool,
) -> str | None:
    """Segment each sample with the model of ``run`` at its training scale into ``run/segmentation``.

    Sets each sample's ``diameter``, ``labels``, ``table`` and ``quality``.
    Returns ``"cancelled"`` when ``callback`` cancels (the images done are
    kept), else None.
    """
    model = load_model(run, device=device)
    for k, s in enumerate(tqdm(samples, desc="segment", unit="image", disable=not progress or None)):
        if cancelled(callback, "segment", k / len(samples)):
            return "cancelled"
        # The image's own scale as the model was trained on it (its targets' median cell size): on the
        # labelled sets closer than the scale search (BENCHMARKS.md, "lociseg adapt").
        d = diameter_from_labels(s.target)
        s.diameter = float(d) if np.isfinite(d) and d > 0 else None
        with warnings.catch_warnings():  # the diameter used is in each image's .lociseg.json and the report
            warnings.filterwarnings("ignore", message="cell diameter estimated")
            s.labels, s.table = model.segment(s.image, channels=order, diameter=s.diameter)
        meta: dict[str, Any] = {"model": str(run)}
        if s.machine is not None:  # the stability check of the quality estimate: one more pass, flipped
            s.view = flipped_view(s.image, model, order, float(s.table.meta["diameter_used"]))
        s.quality = sample_quality(s)
        if s.quality:  # the label-free estimate, as in adapt.json
            meta["quality"] = s.quality
        write_outputs(run / "segmentation", s.name, s.labels, s.table, meta, overwrite=overwrite)
    cancelled(callback, "segment", 1.0)
    return None


def sample_quality(sample: AdaptSample) -> dict[str, float] | None:
    """:func:`lociseg.annotate.evidence.quality_estimate` of a sample's ``labels`` against its machine cells (rounded).

    None for a sample without machine cells (the corrections fine-tuning) or not segmented.
    """
    if sample.machine is None or sample.labels is None:
        return None
    maps = stain_maps(sample.image[1], sample.diameter)
    views = [sample.view] if sample.view is not None else []
    q = quality_estimate(sample.labels, sample.machine, maps, sample.points, views)
    return {k: round(v, 3) for k, v in q.items()}


def report_stage(samples: list[AdaptSample]) -> dict[str, Any]:
    """The label-free quality of the segmented samples, and the images a person should look at first.

    Returns
    -------
    dict
        What the run record (``adapt.json``) adds: ``quality`` (name -> the
        sample's :func:`sample_quality`) and ``look_first`` (the lowest
        :data:`REVIEW_FRACTION` by estimated quality, worst first).
    """
    quality = {s.name: s.quality for s in samples if s.quality}
    return {"quality": quality, "look_first": review_order(quality, REVIEW_FRACTION)}


def read_record(path: Path) -> dict[str, Any]:
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


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write a run's JSON record atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, default=str) + "\n", overwrite=True)

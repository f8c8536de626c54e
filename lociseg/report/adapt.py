"""Adapt a trained model to a lab's own unlabelled images: annotate, fine-tune, segment, report.

>>> result = adapt(["plate1/"], "adapted/", nucleus="DNA", cytoplasm="actin", minutes=15)  # doctest: +SKIP

Every step is an existing piece: machine annotations at each image's own
scale (:func:`lociseg.annotate.annotate_image` with
:func:`~lociseg.annotate.estimate_cell_scale`), the starting model's cells
merged with them as targets (:func:`lociseg.predict.selftrain.cells_from_model`),
supervised fine-tuning from the model's weights (:func:`lociseg.train.train`
with ``init``), segmentation at each image's training scale (:meth:`lociseg.predict.api.Segmenter.segment`)
and an HTML page of what was chosen. ``out`` is itself the run folder
(``best/``, ``last/``, ``log.csv``), so it loads wherever a model name does.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile
from PIL import Image

from ..annotate import (
    annotate_image,
    estimate_cell_scale,
    merge_cells,
    read_cells,
    write_annotation,
    write_contact_sheet,
)
from ..config import to_dict
from ..errors import InputError, LociError
from ..io import read_image
from ..io.files import atomic_write, image_stem
from ..models.checkpoint import model_config
from ..models.pretrained import resolve_model
from ..predict.api import Segmenter, load_model, write_outputs
from ..predict.selftrain import cells_from_model
from ..train.config import ExperimentConfig
from ..train.loop import train
from ..transforms import diameter_from_labels
from .html import CSS, overlay_outlines

__all__ = ["adapt", "TARGETS"]

log = logging.getLogger("lociseg.adapt")

#: How the training targets are drawn: the machine cells alone, the starting
#: model's cells alone, or one of them with the other's cells it missed added
#: (:func:`~lociseg.annotate.merge_cells`). ``model+machine`` keeps the
#: model's outlines and the annotation's extra cells.
TARGETS = ("machine", "model", "model+machine", "machine+model")

_SHOWN = 4  # images shown side by side in the report
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


def _targets(image: np.ndarray, machine: np.ndarray, seg: Segmenter, order: list[int], mode: str) -> np.ndarray:
    if mode == "machine":
        return machine
    own, _ = cells_from_model(image, seg, channels=order, fill=None)
    if mode == "model":
        return own
    if mode == "model+machine":
        return merge_cells(own, machine)
    return merge_cells(machine, own)


def adapt(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]],
    out: str | os.PathLike,
    *,
    nucleus: str | int = "DNA",
    cytoplasm: str | int = "actin",
    minutes: float = 15.0,
    init: str = "cells",
    targets: Literal["machine", "model", "model+machine", "machine+model"] = "model+machine",
    steps: int | None = None,
    lr: float = 5e-4,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    threads: int = 0,
    progress: bool = True,
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
        targets), ``segmentation/`` (labels, tables), ``report/index.html``,
        ``adapt.json`` (settings, images skipped and why, results).
    nucleus, cytoplasm : str or int
        Channels by name or index.
    minutes : float
        Wall-clock budget of the fine-tuning (the learning rate anneals to it).
    init : str
        Starting model: a shipped name (``cells``, ``nuclei``) or a
        checkpoint / run folder.
    targets : str
        One of :data:`TARGETS`.
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

    Returns
    -------
    dict
        ``images`` (names used), ``skipped`` (name -> reason), ``train``
        (what :func:`lociseg.train.train` returned), ``interrupted`` (signal
        name or None), ``report`` (path of the page).

    Raises
    ------
    InputError
        No usable image, or a run in ``out`` without ``resume``/``overwrite``.
    """
    from tqdm import tqdm

    if targets not in TARGETS:
        raise InputError(f"targets must be one of {TARGETS}, got {targets!r}")
    out = Path(out)
    held = [out / n for n in ("best", "last", "log.csv", "adapt.json") if (out / n).exists()]
    if held and not (resume or overwrite):
        raise InputError(
            "holds an adapt run already; use --resume to go on, --overwrite to start again, or another -o", path=out
        )
    ann_dir = out / "annotations"
    report_dir = out / "report"
    for d in (ann_dir, report_dir / "sheets"):
        d.mkdir(parents=True, exist_ok=True)
    init_path = init if Path(init).exists() else str(resolve_model(init))
    seg = load_model(init_path, device=device)
    order = _model_order(seg, nucleus, cytoplasm)
    chans = [nucleus, cytoplasm]

    names, samples, machine, skipped = [], [], {}, {}
    interrupted = None
    t0 = time.perf_counter()
    try:
        for item in tqdm(images, desc="annotate", unit="image", disable=not progress or None):
            name = str(item[0]) if isinstance(item, tuple) else image_stem(item, suffixes=())
            try:
                name, image = _load(item, chans)
                target_file = ann_dir / f"{name}.targets.tif"
                if resume and target_file.is_file():
                    cells, target = read_cells(ann_dir, name), tifffile.imread(target_file).astype(np.int32)
                else:
                    diameter = _check(image)
                    ann = annotate_image(image[0], image[1], diameter=diameter)
                    cells = ann.cells
                    if cells is None or cells.max() == 0:
                        raise InputError("the annotation found no cells")
                    target = _targets(image, cells, seg, order, targets)
                    write_annotation(
                        ann_dir,
                        name,
                        ann.points,
                        ann.foreground,
                        {
                            "nucleus": nucleus,
                            "cytoplasm": cytoplasm,
                            "diameter": round(diameter, 2),
                            "auto_index": ann.auto_index,
                            "targets": targets,
                        },
                        cells=cells,
                    )
                    write_contact_sheet(
                        report_dir / "sheets" / f"{name}.png",
                        image,
                        ann.candidates,
                        ann.points,
                        ann.chosen_index,
                        auto=ann.auto_index,
                        cells=cells,
                    )
                    atomic_write(
                        target_file,
                        lambda p, t=target: tifffile.imwrite(p, t.astype(np.uint32), compression="zlib"),
                        overwrite=True,
                    )
            except (LociError, OSError, ValueError) as exc:
                skipped[name] = str(exc)
                log.warning("%s skipped: %s", name, exc)
                continue
            names.append(name)
            machine[name] = cells
            samples.append((name, image, target))
    except KeyboardInterrupt:
        interrupted = "SIGINT"
    annotate_s = time.perf_counter() - t0
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
        "annotate_seconds": round(annotate_s, 1),
    }
    if interrupted:
        _write_json(out / "adapt.json", {**info, "interrupted": interrupted})
        return {"images": names, "skipped": skipped, "train": None, "interrupted": interrupted, "report": None}
    if not samples:
        raise InputError("no usable image (" + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")", path=out)

    config = _config(init_path, order, nucleus, cytoplasm, minutes, steps, lr, threads).override({"init": init_path})
    previous = _read_json(out / "adapt.json")
    if resume and previous.get("trained"):
        result = previous["train"]
    else:
        images_in, labels_in = [s[1][order] for s in samples], [s[2] for s in samples]
        go_on = resume and (out / "last").is_dir()
        result = train(
            config,
            out,
            train_samples=(images_in, labels_in),
            device=device,
            resume=go_on,
            overwrite=not go_on and (overwrite or resume),
            progress=progress,
        )
        result = {k: v for k, v in result.items() if k in ("step", "diameter", "seconds", "interrupted")}
        if result["interrupted"]:
            _write_json(out / "adapt.json", {**info, "train": result, "trained": False})
            return {
                "images": names,
                "skipped": skipped,
                "train": result,
                "interrupted": result["interrupted"],
                "report": None,
            }
    info.update(train=result, trained=True)
    _write_json(out / "adapt.json", info)

    adapted = load_model(out, device=device)
    rows = []
    for k, (name, image, target) in enumerate(
        tqdm(samples, desc="segment", unit="image", disable=not progress or None)
    ):
        # The image's own scale as the model was trained on it (its targets' median cell size): on the
        # labelled sets closer than the scale search (BENCHMARKS.md, "lociseg adapt").
        d = diameter_from_labels(target)
        d = float(d) if np.isfinite(d) and d > 0 else None
        with warnings.catch_warnings():  # the diameter used is in each image's .json and the report
            warnings.filterwarnings("ignore", message="cell diameter estimated")
            labels, table = adapted.segment(image, channels=order, diameter=d)
            before = seg.segment(image, channels=order, diameter=d)[0] if k < _SHOWN else None
        write_outputs(out / "segmentation", name, labels, table, {"model": str(out)})
        rows.append(
            {
                "name": name,
                "machine cells": int(len(np.unique(machine[name])) - 1),
                "targets": int(len(np.unique(target)) - 1),
                "final cells": int(len(table)),
                "diameter (px)": round(float(table.meta["diameter_used"]), 1),
            }
        )
        if before is not None:
            shown = image[[1, 0]]  # cytoplasm green, nuclei blue
            for tag, lab in (("machine", machine[name]), ("final", labels), ("before", before)):
                Image.fromarray(overlay_outlines(shown, lab)).save(report_dir / f"{name}.{tag}.png", optimize=True)
    page = _write_page(report_dir, info, rows, out / "log.csv", min(len(samples), _SHOWN))
    return {"images": names, "skipped": skipped, "train": result, "interrupted": None, "report": page}


def _config(
    init_path: str, order: list[int], nucleus, cytoplasm, minutes: float, steps: int | None, lr: float, threads: int
) -> ExperimentConfig:
    """Supervised fine-tuning of the model of ``init_path`` (its own settings) on in-memory targets."""
    model = model_config(init_path)
    kind = "lacss" if type(model).__name__.lower().startswith("lacss") else "unet"
    section = to_dict(model)
    if kind == "lacss":
        section["mode"] = "supervised"
    names = list(model.input.channels) or [[nucleus, cytoplasm][i] for i in order]
    return ExperimentConfig.from_dict(
        {
            "model_type": kind,
            kind: section,
            "data": {"train": [], "val": [], "channels": names},
            "optim": {
                "lr": lr,
                "warmup_steps": 20,
                "steps": steps or 100_000,
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
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str) + "\n", overwrite=True)


def svg_curve(x: Sequence[float], y: Sequence[float], title: str, *, width: int = 480, height: int = 200) -> str:
    """A line plot as an inline SVG string."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    esc = html.escape(title)
    if x.size < 2:
        return f'<svg width="{width}" height="{height}" role="img"><text x="10" y="20">{esc}: no curve</text></svg>'
    ml, mb, mt, pw = 44, 24, 22, width - 52
    ph = height - mb - mt
    lo, hi = float(y.min()), float(y.max()) if y.max() > y.min() else float(y.min()) + 1
    px = ml + pw * (x - x[0]) / max(x[-1] - x[0], 1e-9)
    py = mt + ph * (1 - (y - lo) / (hi - lo))
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"><title>{esc}</title>'
        f'<text x="{ml}" y="14" font-size="12" font-weight="bold">{esc}</text>'
        f'<polyline points="{pts}" fill="none" stroke="#4a7fb5" stroke-width="1.5"/>'
        f'<text x="{ml - 4}" y="{mt + 8}" font-size="10" text-anchor="end">{hi:.3g}</text>'
        f'<text x="{ml - 4}" y="{mt + ph}" font-size="10" text-anchor="end">{lo:.3g}</text>'
        f'<text x="{ml}" y="{height - 8}" font-size="10">step {x[0]:.0f}</text>'
        f'<text x="{ml + pw}" y="{height - 8}" font-size="10" text-anchor="end">{x[-1]:.0f}</text></svg>'
    )


def _write_page(report_dir: Path, info: dict, rows: list[dict], log_csv: Path, shown: int) -> Path:
    import csv

    steps, loss = [], []
    if log_csv.is_file():
        with open(log_csv, newline="") as fh:
            for r in csv.DictReader(fh):
                steps.append(float(r["step"]))
                loss.append(float(r["loss"]))
    esc = html.escape
    settings = "".join(
        f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>" for k, v in info.items() if k not in ("images", "skipped")
    )
    skipped = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in info["skipped"].items()) or "<li>none</li>"
    head = "".join(f"<th>{esc(k)}</th>" for k in rows[0]) if rows else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    panels = (("machine", "machine cells"), ("before", "starting model"), ("final", "adapted model"))
    pairs = "".join(
        f'<h3>{esc(r["name"])}</h3><div class="figure">'
        + "".join(
            f'<figure><img src="{esc(r["name"])}.{t}.png" alt="{t}"><figcaption>{cap}</figcaption></figure>'
            for t, cap in panels
        )
        + "</div>"
        for r in rows[:shown]
    )
    sheets = "".join(
        f'<figure><a href="sheets/{esc(r["name"])}.png"><img src="sheets/{esc(r["name"])}.png" '
        f'alt="foreground candidates of {esc(r["name"])}"></a><figcaption>{esc(r["name"])}</figcaption>'
        f"</figure>"
        for r in rows
        if (report_dir / "sheets" / f"{r['name']}.png").is_file()
    )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>lociseg adapt</title>'
        f"<style>{CSS} figure{{display:inline-block;margin:4px}} figure img{{max-width:420px}}</style></head><body>"
        f"<h1>lociseg adapt</h1><h2>Settings</h2><dl>{settings}</dl><h2>Skipped images</h2><ul>{skipped}</ul>"
        f'<h2>Cells per image</h2><table class="summary"><tr>{head}</tr>{body}</table>'
        f"<h2>Training loss</h2>{svg_curve(steps, loss, 'loss per step')}"
        f"<h2>Machine cells, starting model, adapted model</h2>{pairs}"
        f"<h2>Foreground chosen per image (red frame; last panel: machine cells)</h2>{sheets}</body></html>\n"
    )
    return atomic_write(report_dir / "index.html", page, overwrite=True)

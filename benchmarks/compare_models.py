"""Compare segmentation models and training data on CPU budgets that converge; resumable.

Models {3-class U-Net, U-Net expanded, LACSS supervised, weak, weak+aux,
points} x training data {original, original + cut-and-paste synthetic images
at three densities} x data sets {BBBC018 cells, Koyuncu nuclei, Aitslab U2OS
cells, Usiigaci phase contrast} x seeds. Models trained from nucleus points
do not apply to the phase-contrast set (no nuclear channel). Every model trains with :func:`lociseg.train.train` (the loop
``lociseg train`` runs) for a fixed number of steps on one thread, predicts
the test split and is scored with F1@0.5, AP50, AP75 (score-ranked), AFNR
(mean false-negative rate over IoU 0.5:0.95) and the foreground mIoU (mean
over test images of the IoU of predicted and true foreground).

Each finished run is appended at once to ``--results`` (JSONL) with its
validation curve and the CPU seconds it used; a rerun skips the runs found
there and continues an interrupted run from its ``last/`` checkpoint
(SIGTERM stops a run cleanly). ``--report`` only rewrites the table and the
convergence plot from the results file.

The CPU recipe (issue 25; BENCHMARKS.md lists every change from the seed
recipe): 128 px crops at model scale, the ``tiny`` LACSS backbone, U-Nets of
width 16, a step budget per model family, the final checkpoint scored.
The weak rows run with the mask head's location prior (the default since
2026-12-07); those measured before it are in ``compare/results_no_prior.jsonl``.

Resume or extend the matrix (one thread per run)::

    OMP_NUM_THREADS=1 nohup python benchmarks/compare_models.py --datasets bbbc018-cells,koyuncu,aitslab \\
        > runs/compare/log.txt 2>&1 &

Table and plot only::

    python benchmarks/compare_models.py --report
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("compare_models")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "compare" / "results.jsonl"
THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)

MODELS: dict[str, dict[str, Any]] = {
    "unet": {"type": "unet", "preset": "standard"},
    "unet-expanded": {"type": "unet", "preset": "expanded"},
    "lacss-supervised": {"type": "lacss", "mode": "supervised"},
    "lacss-weak": {"type": "lacss", "mode": "weak"},
    "lacss-weak+aux": {"type": "lacss", "mode": "weak+aux"},
    "points": {"type": "lacss", "mode": "points"},
    # The 2021 method's own recipe: patches centred at each nucleus, graph-cut background.
    "points-patch": {"type": "lacss", "mode": "points", "patch": True},
}
TRAIN_DATA = ("original", "synth")

#: The U-Net's training recipe in the seed study (Caicedo et al. 2019): lr, batch size.
UNET_RECIPE = (0.01, 5)


def _fixed_splits(spec: str, channels: list[str], nucleus: int, cytoplasm: int) -> dict[str, Any]:
    """A data set with the train / val / test splits of one ``lociseg.data`` spec."""
    splits = {part: (spec, part) for part in ("train", "val", "test")}
    return {**splits, "channels": channels, "nucleus": nucleus, "cytoplasm": cytoplasm}


# Data set -> (spec, split) of train / val / test, the channels by name and which is nucleus / cytoplasm.
DATASETS: dict[str, dict[str, Any]] = {
    "bbbc018-cells": _fixed_splits("bbbc018", ["actin", "DNA"], 1, 0),
    "koyuncu": _fixed_splits("koyuncu", ["blue"], 0, 0),
    "aitslab": _fixed_splits("aitslab", ["cell", "nucleus"], 1, 0),
    # label-free phase contrast (the LIVECell modality): one channel and no nucleus to point at
    "usiigaci": {**_fixed_splits("usiigaci", ["phase"], None, 0), "no_nucleus": True},
    "dsb2018": {
        "train": ("dsb2018-train", "train"),
        "val": ("dsb2018-train", "val"),
        "test": ("dsb2018-test", None),
        "channels": None,
        "nucleus": 0,
        "cytoplasm": 0,
    },
}

DEFAULT_DATASETS = ["bbbc018-cells", "koyuncu", "aitslab", "usiigaci"]

#: Models trained from nucleus points: they do not apply to a set with no nuclear channel.
NEEDS_NUCLEUS = ("lacss-weak", "lacss-weak+aux", "points", "points-patch")


def applies(dataset: str, model: str) -> bool:
    """Whether a model can be trained on a data set (point-trained models need a nuclear channel)."""
    return not (DATASETS[dataset].get("no_nucleus") and model in NEEDS_NUCLEUS)


#: Synthetic densities: target confluence as a multiple of the real images' median confluence.
DENSITIES = (0.5, 1.0, 1.5)
MAX_CONFLUENCE = 0.85


# --------------------------------------------------------------------------- data


def _load(spec: str, split: str | None, channels: list[str] | None, limit: int | None = None) -> list[Any]:
    """Labelled samples of a data set split (``lociseg.data`` specs and fixed splits)."""
    from lociseg.data import load_samples

    return [s for s in load_samples(spec, split=split, channels=channels, limit=limit) if s.labels is not None]


def _normalize(image: np.ndarray, low: float, high: float) -> np.ndarray:
    from lociseg.transforms import normalize_percentile

    return normalize_percentile(image, low, high)


def _median_diameter(labels: np.ndarray) -> float | None:
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(2 * np.sqrt(areas / np.pi))) if len(areas) else None


def synthetic_densities(train: list[Any], per_density: float, seed: int, name: str) -> tuple[list[Any], list[float]]:
    """Cut-and-paste images at three densities (``DENSITIES`` x the median real confluence).

    Returns the synthetic samples and the mean achieved confluence per density.
    """
    from lociseg.synth import cut_paste_synthesize, extract_cells

    real = float(np.median([np.mean(np.asarray(s.labels) > 0) for s in train]))
    cells = extract_cells(train)
    n = int(round(per_density * len(train)))
    out, achieved = [], []
    for k, f in enumerate(DENSITIES):
        target = min(MAX_CONFLUENCE, f * real)
        made = cut_paste_synthesize(
            train, n_images=n, confluence=target, rng=seed * 100 + k, cells=cells, name_prefix=f"synth_{name}_{k}"
        )
        achieved.append(float(np.mean([np.mean(np.asarray(s.labels) > 0) for s in made])) if made else float("nan"))
        out += made
    return out, achieved


def graphcut_samples(samples: list[Any], nucleus: int, cytoplasm: int) -> tuple[list[Any], float]:
    """Copies with points from the labels (cell centroids) and the graph-cut foreground of the stain.

    The foreground is :func:`lociseg.annotate.annotate_image`'s chosen graph-cut
    candidate (the ``level`` rule) at each image's median cell diameter: no
    label pixel reaches it. Also returns its mean IoU with the labels' foreground.
    """
    from dataclasses import replace

    from lociseg.annotate import annotate_image, weak_from_labels
    from lociseg.metrics.matching import foreground_iou

    out, ious = [], []
    for s in samples:
        image = np.asarray(s.image)
        image = image[None] if image.ndim == 2 else image
        ann = annotate_image(
            image[nucleus], image[cytoplasm], diameter=_median_diameter(s.labels), cells=False, rule="level"
        )
        points, _ = weak_from_labels(np.asarray(s.labels))
        out.append(replace(s, points=points, foreground=ann.foreground.astype(np.uint8)))
        ious.append(foreground_iou(np.asarray(s.labels), ann.foreground))
    return out, float(np.mean(ious))


# --------------------------------------------------------------------------- models and training


def run_config(name: str, in_channels: int, channel_names: list[str], args: argparse.Namespace, seed: int) -> Any:
    """The :class:`~lociseg.train.ExperimentConfig` of one run (the CPU recipe)."""
    from lociseg.train import ExperimentConfig

    spec = MODELS[name]
    cfg = ExperimentConfig()
    steps = steps_for(name, args)
    over: dict[str, Any] = {
        "model_type": spec["type"],
        "data.channels": [],  # the samples hold the model's channels already
        "data.val": [],
        "data.crop_size": crop_for(name, args),
        "optim.seed": seed,
        "optim.steps": steps,
        "optim.budget_minutes": 0.0,  # a step budget: reproducible under CPU contention
        "optim.val_every": max(1, steps // args.val_points),
        "optim.select_best": False,  # score the final model; validation only draws the curve
        "optim.threads": 1,
        "optim.checkpoint_every": max(1, steps // args.val_points),
    }
    names = channel_names or [str(i) for i in range(in_channels)]
    if spec["type"] == "unet":
        lr, batch = UNET_RECIPE
        over.update(
            {
                "unet.preset": spec["preset"],
                "unet.input.in_channels": in_channels,
                "unet.input.channels": names,
                "unet.base_channels": args.unet_width,
                "optim.lr": lr,
                "optim.batch_size": batch,
            }
        )
    else:
        over.update({"lacss.mode": spec["mode"], "lacss.input.in_channels": in_channels, "lacss.input.channels": names})
        if spec["mode"] != "supervised":
            over["lacss.seghead.instance_kernel"] = 3  # as configs/bbbc018_cells_weak*.yaml
            over["data.annotations"] = ["from-labels"]
        if spec.get("patch"):  # the samples carry points and the graph-cut foreground already
            over.update(
                {
                    "data.annotations": [],
                    "data.sampler": "points",
                    "optim.batch_size": args.patch_batch,
                    "lacss.weak.background_source": "foreground",
                }
            )
    return cfg.override(over)


def crop_for(name: str, args: argparse.Namespace) -> int:
    return args.patch_crop if MODELS[name].get("patch") else args.crop


def steps_for(name: str, args: argparse.Namespace) -> int:
    return args.unet_steps if MODELS[name]["type"] == "unet" else args.lacss_steps


# --------------------------------------------------------------------------- prediction and metrics


def _paste(instances: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the instances and the score of each label (index = label - 1)."""
    from lociseg.predict.paste import paste_instances

    scores = np.asarray(instances.scores, np.float32)
    labels, kept = paste_instances(instances, shape)
    labels = np.asarray(labels)
    per_label = np.ones(int(labels.max()), np.float32)
    kept = np.asarray(kept)
    per_label[: min(len(kept), len(per_label))] = scores[kept[: len(per_label)]]
    return labels, per_label


def predict_labels(
    model: Any, sample: Any, input_spec: Any, device: torch.device, diameter: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Label image at the original scale and per-label scores (index = label - 1).

    The image is rescaled by ``diameter`` (px), default its median ground-truth diameter.
    """
    from lociseg.transforms import rescale_image, rescale_labels

    image = np.asarray(sample.image)
    image = image[None] if image.ndim == 2 else image
    d = diameter or _median_diameter(sample.labels) or input_spec.target_diameter
    x = rescale_image(
        _normalize(image, input_spec.normalize_low, input_spec.normalize_high), input_spec.target_diameter / d
    )
    model.eval()
    with torch.no_grad():
        inst = model.predict_instances(torch.from_numpy(np.ascontiguousarray(x))[None].to(device))
    model.train()
    small, per_label = _paste(inst, x.shape[1:])
    return rescale_labels(small, image.shape[1:]), per_label


# --------------------------------------------------------------------------- driver


def run_key(r: dict[str, Any]) -> tuple:
    """What makes two runs the same: data set, model, training data, seed, steps and crop."""
    return (r["dataset"], r["model"], r["train_data"], int(r["seed"]), int(r["steps"]), int(r["crop"]))


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of a results file (JSONL; a torn last line from a killed writer is skipped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping a torn line", path)
    return rows


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a single line (one write, flushed and synced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def val_curve(log_csv: Path) -> list[tuple[int, float, float]]:
    """(step, wall seconds, validation F1@0.5) of every validated step in a run's ``log.csv``."""
    if not log_csv.exists():
        return []
    with open(log_csv, newline="") as fh:
        return [
            (int(r["step"]), float(r["seconds"]), float(r["val_f1_50"]))
            for r in csv.DictReader(fh)
            if r.get("val_f1_50")
        ]


def late_gain(curve: list[list[float]], steps: int) -> float | None:
    """Validation F1 gained over the last 25 % of the steps (end minus the point at 75 %)."""
    at = {int(c[0]): c[2] for c in curve}
    if steps not in at:
        return None
    before = [s for s in at if s <= 0.75 * steps]
    return at[steps] - at[max(before)] if before else None


def run_one(
    dataset: str, model_name: str, train_data: str, seed: int, args: argparse.Namespace, data: dict
) -> dict[str, Any] | None:
    """Train (or resume) and score one run; its record, or None when a signal stopped it."""
    from lociseg.models.checkpoint import recover_checkpoint
    from lociseg.train import train

    d = data[dataset]
    steps = steps_for(model_name, args)
    rec: dict[str, Any] = {
        "dataset": dataset,
        "model": model_name,
        "train_data": train_data,
        "seed": seed,
        "steps": steps,
        "crop": crop_for(model_name, args),
        "status": "ok",
    }
    samples = list(d["train"])
    if train_data == "synth":
        if seed not in d["synth"]:  # made once per data set and seed, shared by the models
            d["synth"][seed] = synthetic_densities(d["train"], args.synth_per_density, seed, dataset)
        synth, achieved = d["synth"][seed]
        samples += synth
        rec["synth_confluence"] = achieved
    if MODELS[model_name].get("patch"):
        samples, rec["graphcut_fg_iou"] = graphcut_samples(
            samples, DATASETS[dataset]["nucleus"], DATASETS[dataset]["cytoplasm"]
        )
    rec["n_train_images"], rec["n_val_images"], rec["n_test_images"] = len(samples), len(d["val"]), len(d["test"])
    image = np.asarray(samples[0].image)
    in_ch = image.shape[0] if image.ndim == 3 else 1
    run_dir = args.runs / f"{dataset}_{model_name}_{train_data}_s{seed}_{steps}"
    cpu_file = run_dir / "cpu.json"
    resume = bool(recover_checkpoint(run_dir / "last"))
    cpu_before = json.loads(cpu_file.read_text())["cpu_s"] if resume and cpu_file.exists() else 0.0
    cfg = run_config(model_name, in_ch, DATASETS[dataset]["channels"], args, seed)
    torch.manual_seed(seed)
    c0 = time.process_time()
    info = train(
        cfg,
        run_dir,
        train_samples=samples,
        val_samples=d["val"],
        device="cpu",
        resume=resume,
        overwrite=not resume,
        progress=False,
    )
    cpu_s = cpu_before + time.process_time() - c0
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu_file.write_text(json.dumps({"cpu_s": cpu_s, "step": info["step"]}))
    if info["interrupted"]:
        log.warning("%s stopped by %s at step %d; rerun to resume", run_dir.name, info["interrupted"], info["step"])
        return None
    curve = val_curve(run_dir / "log.csv")
    wall = curve[-1][1] if curve else 0.0
    # CPU minutes at each validated step: wall seconds scaled by the run's CPU/wall ratio
    ratio = cpu_s / wall if wall > 0 else 1.0
    rec["curve"] = [[s, round(t * ratio / 60, 3), round(f, 4)] for s, t, f in curve]
    rec["late_gain"] = late_gain(rec["curve"], steps)
    rec["train_cpu_min"] = round(cpu_s / 60, 2)
    rec["diameter"] = info["diameter"]
    if cfg.model_type == "lacss":
        rec["location_prior"] = cfg.lacss.uses_location_prior
    rec.update(score_run(run_dir, d["test"], info["diameter"]))
    return rec


def score_run(run_dir: Path, test: list[Any], train_diameter: float, *, at_train_scale: bool = False) -> dict[str, Any]:
    """Test metrics of a run's final model.

    Every model sees each test image at its median ground-truth diameter (the
    same oracle scale for all); ``at_train_scale`` (weak modes only) scores
    every test image at the training diameter instead (``lociseg segment
    --diameter train``), which on BBBC018 scored lower (BENCHMARKS.md).
    """
    from lociseg.device import choose_device
    from lociseg.metrics import aggregate, evaluate_image
    from lociseg.train import load_checkpoint

    model = load_checkpoint(run_dir / "last", device="cpu")
    device = choose_device("cpu")
    c1 = time.process_time()
    per_image = []
    for s in test:
        pred, scores = predict_labels(model, s, model.config.input, device, train_diameter if at_train_scale else None)
        per_image.append(evaluate_image(np.asarray(s.labels), pred, scores))
    agg = aggregate(per_image, by="sum")
    return {
        "test_scale": "train diameter" if at_train_scale else "gt median per image",
        "f1_50": float(agg["f1_50"]),
        "ap50": float(agg["ap50"]),
        "ap75": float(agg["ap75"]),
        "afnr": float(agg["afnr"]),
        "fg_miou": float(np.mean([r["fg_iou"] for r in per_image])),
        "f1_per_threshold": [round(float(x), 4) for x in agg["per_threshold"]["f1"]],
        "test_cpu_min": round((time.process_time() - c1) / 60, 2),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": _hardware(),
    }


def _fmt(values: list[float]) -> str:
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return "–"
    return f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")


def table(records: list[dict[str, Any]], datasets: list[str]) -> str:
    """Markdown: one table per data set, rows model x training data (mean ± sd over seeds).

    Where a cell was run at several step budgets, the longest one is shown.
    """
    lines: list[str] = []
    for ds in datasets:
        if not any(r["dataset"] == ds and r.get("status") == "ok" for r in records):
            lines += [f"**{ds}**: no finished run yet.", ""]
            continue
        lines += [
            f"**{ds}**",
            "",
            "| model | training data | F1@0.5 | AP50 | AP75 | AFNR | fg mIoU | train CPU min | steps | seeds | F1 gain, last 25 % |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for td in TRAIN_DATA:
            for m in MODELS:
                rs = [r for r in records if r["dataset"] == ds and r["model"] == m and r["train_data"] == td]
                ok = [r for r in rs if r.get("status") == "ok"]
                ok = [r for r in ok if r["steps"] == max(x["steps"] for x in ok)]  # the longest budget run
                if not applies(ds, m):
                    lines.append(f"| {m} | {td} | " + " | ".join(["n/a"] * 7) + " | – | no nuclear channel |")
                    continue
                if not ok:
                    lines.append(f"| {m} | {td} | " + " | ".join(["–"] * 7) + " | 0 | |")
                    continue
                steps = sorted({r["steps"] for r in ok})
                gains = [r["late_gain"] for r in ok if r.get("late_gain") is not None]
                lines.append(
                    f"| {m} | {td} | {_fmt([r['f1_50'] for r in ok])} | {_fmt([r['ap50'] for r in ok])} "
                    f"| {_fmt([r['ap75'] for r in ok])} | {_fmt([r['afnr'] for r in ok])} "
                    f"| {_fmt([r['fg_miou'] for r in ok])} | {np.mean([r['train_cpu_min'] for r in ok]):.1f} "
                    f"| {'/'.join(map(str, steps))} | {len(ok)} | {_fmt(gains)} |"
                )
        lines.append("")
    return "\n".join(lines)


def _plot_curves(ax: Any, records: list[dict[str, Any]], ds: str, train_data: str) -> None:
    """One panel: the seed-0 validation curve of every model on one data set and training data."""
    for r in records:
        if (r["dataset"], r["train_data"], r["seed"]) != (ds, train_data, 0) or not r.get("curve"):
            continue
        c = np.asarray(r["curve"], float)
        ax.plot(c[:, 1], c[:, 2], color=f"C{list(MODELS).index(r['model'])}", marker=".", ms=4, lw=1)
    ax.set_title(f"{ds}, " + ("original + synthetic" if train_data == "synth" else train_data), fontsize=9)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)


def convergence_plot(records: list[dict[str, Any]], datasets: list[str], path: Path) -> None:
    """Validation F1@0.5 vs CPU minutes (seed 0): a column per data set, a row per training data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    shown = [ds for ds in datasets if any(r["dataset"] == ds and r.get("curve") for r in records)]
    if not shown:
        return
    fig, axes = plt.subplots(
        len(TRAIN_DATA), len(shown), figsize=(3.6 * len(shown) + 1.6, 2.9 * len(TRAIN_DATA)), squeeze=False
    )
    for row, train_data in enumerate(TRAIN_DATA):
        for ax, ds in zip(axes[row], shown):
            _plot_curves(ax, records, ds, train_data)
        axes[row][0].set_ylabel("validation F1@0.5", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("CPU minutes (1 thread)", fontsize=8)
    handles = [Line2D([], [], color=f"C{i}", marker=".", lw=1) for i in range(len(MODELS))]
    fig.legend(handles, list(MODELS), loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def report(results: Path, datasets: list[str]) -> str:
    """Rewrite ``table.md`` and ``convergence.png`` beside the results file; the table."""
    records = read_results(results)
    datasets = datasets + sorted({r["dataset"] for r in records} - set(datasets))
    text = table(records, datasets)
    (results.parent / "table.md").write_text(text)
    convergence_plot(records, datasets, results.parent / "convergence.png")
    return text


def _hardware() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, torch {torch.__version__}, 1 thread"


def build_parser() -> argparse.ArgumentParser:
    """The command line (also the settings of a run for scripts that call :func:`run_one`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help=f"comma list of {list(DATASETS)}")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {list(MODELS)}")
    ap.add_argument("--train-data", default="original", help=f"comma list of {list(TRAIN_DATA)}")
    ap.add_argument("--seeds", default="0", help="comma list of seeds")
    ap.add_argument("--lacss-steps", type=int, default=3000, help="steps of every LACSS run")
    ap.add_argument("--unet-steps", type=int, default=1500, help="steps of every U-Net run")
    ap.add_argument("--crop", type=int, default=128, help="training crop side at model scale (multiple of 32)")
    ap.add_argument("--patch-crop", type=int, default=64, help="points-patch: patch side at model scale")
    ap.add_argument("--patch-batch", type=int, default=16, help="points-patch: patches per step")
    ap.add_argument("--unet-width", type=int, default=16, help="unet.base_channels")
    ap.add_argument("--val-images", type=int, default=6, help="validation images drawn in the curve")
    ap.add_argument("--val-points", type=int, default=8, help="validations per run (one every steps/N)")
    ap.add_argument("--synth-per-density", type=float, default=1.0, help="synthetic images per real one per density")
    ap.add_argument("--max-test", type=int, default=None, help="score the first N test images (default all)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSONL of finished runs (appended, read to skip)")
    ap.add_argument("--runs", type=Path, default=Path("runs/compare"), help="run folders (checkpoints, logs)")
    ap.add_argument("--report", action="store_true", help="only rewrite table.md and convergence.png")
    ap.add_argument("--dry-run", action="store_true", help="list the runs still to do and stop")
    return ap


def load_data(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """The train, val (``--val-images``) and test (``--max-test``) samples of a data set; no synthetic ones yet."""
    d = DATASETS[dataset]
    return {
        "train": _load(*d["train"], d["channels"]),
        "val": _load(*d["val"], d["channels"], args.val_images),
        "test": _load(*d["test"], d["channels"], args.max_test),
        "synth": {},
    }


def main(argv: list[str] | None = None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    datasets = [d for d in args.datasets.split(",") if d]
    models = [m for m in args.models.split(",") if m]
    train_data = [t for t in args.train_data.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for names, pool in ((datasets, DATASETS), (models, MODELS), (train_data, TRAIN_DATA)):
        bad = [n for n in names if n not in pool]
        if bad:
            ap.error(f"unknown {bad}; choose from {list(pool)}")
    if args.report:
        print(report(args.results, DEFAULT_DATASETS))
        return
    done = {run_key(r) for r in read_results(args.results) if r.get("status") == "ok"}
    todo = [
        (ds, m, t, s)
        for ds in datasets
        for t in train_data
        for s in seeds
        for m in models
        if applies(ds, m) and (ds, m, t, s, steps_for(m, args), crop_for(m, args)) not in done
    ]
    log.info("%d runs to do: %s", len(todo), ", ".join("/".join(map(str, k)) for k in todo))
    if args.dry_run:
        return
    data: dict[str, dict[str, list]] = {}
    for i, (ds, m, t, s) in enumerate(todo, 1):
        if ds not in data:
            data[ds] = load_data(ds, args)
        log.info("[%d/%d] %s %s %s seed %d", i, len(todo), ds, m, t, s)
        try:
            rec = run_one(ds, m, t, s, args, data)
        except Exception as exc:  # one failed run must not stop the others; it is retried on rerun
            log.error("%s %s %s seed %d failed: %s\n%s", ds, m, t, s, exc, traceback.format_exc())
            rec = {
                "dataset": ds,
                "model": m,
                "train_data": t,
                "seed": s,
                "steps": steps_for(m, args),
                "crop": crop_for(m, args),
                "status": f"failed: {exc.__class__.__name__}: {exc}",
            }
        if rec is None:  # stopped by a signal: resumable, not recorded
            sys.exit(1)
        append_result(args.results, rec)
        log.info(
            "done: F1@0.5 %s AP50 %s fg mIoU %s, %s CPU min, late gain %s",
            rec.get("f1_50"),
            rec.get("ap50"),
            rec.get("fg_miou"),
            rec.get("train_cpu_min"),
            rec.get("late_gain"),
        )
        report(args.results, DEFAULT_DATASETS)


if __name__ == "__main__":
    main()

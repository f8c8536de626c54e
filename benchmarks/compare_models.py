"""Compare segmentation models and training data under one wall-clock budget.

Models {LACSS supervised, LACSS weak, LACSS weak+aux, U-Net, U-Net expanded}
x training data {original, original + cut-and-paste synthetic} x data sets
{BBBC018 cells, nuclei (DSB2018)} x seeds. Every run trains for the same
wall-clock budget, predicts the test split and is scored with F1@0.5, AP50
(score-ranked) and AFNR (mean false-negative rate over IoU 0.5:0.95); writes
``results.{json,csv,md}`` and ``f1_vs_iou_<dataset>.png`` to ``--out``.

Every model trains with the loop users run, :func:`lociseg.train.train`
(``lociseg train``), on the in-memory samples (``train_samples=``): the same
crops, augmentation, AdamW settings, clipping and rescaling to
``input.target_diameter``; only ``optim.budget_minutes`` (and a step count
the budget always ends first) is set here, plus the U-Net seed-study recipe
(``UNET_RECIPE``: lr 0.01, batch 5, crop 256) for U-Nets. Weak modes
train from points + foreground derived from the ground truth
(``data.annotations: [from-labels]``). Scale at test time uses the median
ground-truth diameter of each test image (the same oracle for every model).

Quick CPU smoke run (a few minutes)::

    python benchmarks/compare_models.py --quick --budget-min 0.5 --datasets nuclei \\
        --models unet,unet-expanded --out benchmarks/results/compare_smoke

Full comparison (GPU recommended)::

    python benchmarks/compare_models.py --budget-min 30 --seeds 0,1,2 --out benchmarks/results/compare
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("compare_models")

THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)

MODELS: dict[str, dict[str, Any]] = {
    "lacss-supervised": {"type": "lacss", "mode": "supervised", "weak": False},
    "lacss-weak": {"type": "lacss", "mode": "weak", "weak": True},
    "lacss-weak+aux": {"type": "lacss", "mode": "weak+aux", "weak": True},
    "unet": {"type": "unet", "preset": "standard", "weak": False},
    "unet-expanded": {"type": "unet", "preset": "expanded", "weak": False},
}

#: The U-Net's training recipe in the seed study (Caicedo et al. 2019): lr, batch size, crop side.
UNET_RECIPE = (0.01, 5, 256)

# Data set -> list of (spec, split) for training and test; channels by name where the data set has them.
DATASETS: dict[str, dict[str, Any]] = {
    "bbbc018-cells": {"train": [("bbbc018", "train")], "test": [("bbbc018", "test")], "channels": ["actin", "DNA"]},
    "nuclei": {"train": [("dsb2018-train", "train")], "test": [("dsb2018-test", None)], "channels": None},
    "nuclei-koyuncu": {"train": [("koyuncu", "train")], "test": [("koyuncu", "test")], "channels": None},
}


# --------------------------------------------------------------------------- data


def _load(spec: str, split: str | None, channels: list[str] | None, limit: int | None) -> list[Any]:
    """Samples of a data set split (``lociseg.data`` specs and fixed splits)."""
    from lociseg.data import load_samples

    return load_samples(spec, split=split, channels=channels, limit=limit)


def _normalize(image: np.ndarray, low: float, high: float) -> np.ndarray:
    from lociseg.io import normalize_percentile

    return normalize_percentile(image, low, high)


def _median_diameter(labels: np.ndarray) -> float | None:
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(2 * np.sqrt(areas / np.pi))) if len(areas) else None


# --------------------------------------------------------------------------- models and training


def train_model(
    name: str, samples: list[Any], in_channels: int, out_dir: Path, args: argparse.Namespace, seed: int
) -> tuple[Any, dict[str, Any]]:
    """Train model ``name`` on in-memory samples with :func:`lociseg.train.train`; the model and its result."""
    from lociseg.train import ExperimentConfig, load_checkpoint, train

    spec = MODELS[name]
    cfg = ExperimentConfig()
    over: dict[str, Any] = {
        "model_type": spec["type"],
        "data.channels": [],  # the samples hold the model's channels already
        "data.val": [],
        "optim.seed": seed,
        "optim.budget_minutes": args.budget_min,
        "optim.steps": 10**7,  # the wall-clock budget ends every run; the LR anneals over the budget
    }
    lr, batch, crop = cfg.optim.lr, cfg.optim.batch_size, cfg.data.crop_size
    if spec["type"] == "unet":
        over.update({"unet.preset": spec["preset"], "unet.input.in_channels": in_channels})
        if args.quick:
            over.update({"unet.base_channels": 8, "unet.depth": 3})
        lr, batch, crop = UNET_RECIPE  # the seed study's recipe
    else:
        over.update({"lacss.mode": spec["mode"], "lacss.input.in_channels": in_channels})
        if spec["weak"]:
            over["lacss.seghead.instance_kernel"] = (
                3  # as configs/bbbc018_cells_weak*.yaml: weak masks need the 3x3 stack
            )
            over["data.annotations"] = ["from-labels"]
    lr, batch, crop = args.lr or lr, args.batch_size or batch, args.crop or crop
    if args.quick:
        batch, crop = min(batch, 4), min(crop, 128)
    over.update({"optim.lr": lr, "optim.batch_size": batch, "data.crop_size": crop})
    result = train(
        cfg.override(over), out_dir, train_samples=samples, device=args.device, progress=False, overwrite=True
    )
    return load_checkpoint(out_dir / "best", device="cpu"), {"lr": lr, "batch_size": batch, "crop": crop, **result}


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


def predict_labels(model: Any, sample: Any, input_spec: Any, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Label image at the original scale and per-label scores (index = label - 1)."""
    from lociseg.transforms import rescale_image, rescale_labels

    image = np.asarray(sample.image)
    image = image[None] if image.ndim == 2 else image
    d = _median_diameter(sample.labels) or input_spec.target_diameter
    x = rescale_image(
        _normalize(image, input_spec.normalize_low, input_spec.normalize_high), input_spec.target_diameter / d
    )
    model.eval()
    with torch.no_grad():
        inst = model.predict_instances(torch.from_numpy(np.ascontiguousarray(x))[None].to(device))
    model.train()
    small, per_label = _paste(inst, x.shape[1:])
    return rescale_labels(small, image.shape[1:]), per_label


def score_image(gt: np.ndarray, pred: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """All metrics of one image (:func:`lociseg.metrics.evaluate_image`)."""
    from lociseg.metrics import evaluate_image

    return evaluate_image(gt, pred, scores)


def aggregate_scores(per_image: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled (summed counts) F1@0.5, score-ranked AP50, AFNR and F1 per IoU threshold."""
    from lociseg.metrics import aggregate

    a = aggregate(per_image, by="sum")
    f1 = a.get("per_threshold", {}).get("f1")
    return {
        "f1_50": a["f1_50"],
        "ap50": a["ap50"],
        "afnr": a["afnr"],
        "f1_per_threshold": list(map(float, f1)) if f1 is not None else None,
    }


# --------------------------------------------------------------------------- driver


@dataclass
class RunResult:
    dataset: str
    model: str
    train_data: str
    seed: int
    status: str = "ok"
    f1_50: float | None = None
    ap50: float | None = None
    afnr: float | None = None
    f1_per_threshold: list[float] | None = None
    steps: int | None = None
    train_s: float | None = None
    n_train_images: int | None = None
    n_test_images: int | None = None
    extra: dict = field(default_factory=dict)


def _synthetic(train: list[Any], factor: float, seed: int, cache: dict, key: tuple) -> list[Any]:
    if key not in cache:
        from lociseg.synth import cut_paste_synthesize

        n = int(round(factor * len(train)))
        cache[key] = cut_paste_synthesize(train, n_images=n, rng=seed, name_prefix=f"synth_{key[0]}") if n else []
    return cache[key]


def run_one(
    dataset: str, model_name: str, train_data: str, seed: int, args: argparse.Namespace, data: dict, synth_cache: dict
) -> RunResult:
    res = RunResult(dataset, model_name, train_data, seed)
    from lociseg.device import choose_device

    device = choose_device(args.device)
    train, test = data[dataset]
    samples = list(train)
    if train_data == "original+synth":
        samples += _synthetic(train, args.synth_factor, seed, synth_cache, (dataset, seed))
    res.n_train_images, res.n_test_images = len(samples), len(test)
    in_ch = int(np.asarray(samples[0].image).shape[0]) if np.asarray(samples[0].image).ndim == 3 else 1
    try:
        torch.manual_seed(seed)
        run_dir = Path(args.out) / "runs" / f"{dataset}_{model_name}_{train_data}_{seed}"
        model, info = train_model(model_name, samples, in_ch, run_dir, args, seed)
        model.to(device)
        res.steps, res.train_s = info["step"], info["seconds"]
        res.extra.update({k: info[k] for k in ("lr", "batch_size", "crop", "diameter")})
        per_image = []
        for s in test:
            pred, scores = predict_labels(model, s, model.config.input, device)
            per_image.append(score_image(np.asarray(s.labels), pred, scores))
        agg = aggregate_scores(per_image)
        res.f1_50, res.ap50, res.afnr, res.f1_per_threshold = (
            agg["f1_50"],
            agg["ap50"],
            agg["afnr"],
            agg["f1_per_threshold"],
        )
    except (ImportError, ModuleNotFoundError) as exc:
        res.status = f"unavailable: {exc}"
    except Exception as exc:  # one failed run must not lose the others
        res.status = f"failed: {exc.__class__.__name__}: {exc}"
        log.debug(traceback.format_exc())
    return res


def _fmt(values: list[float]) -> str:
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return "–"
    return f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")


def write_outputs(results: list[RunResult], out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.__dict__ for r in results]
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1, default=float))
    cols = [
        "dataset",
        "model",
        "train_data",
        "seed",
        "status",
        "f1_50",
        "ap50",
        "afnr",
        "steps",
        "train_s",
        "n_train_images",
        "n_test_images",
    ]
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Model comparison ({meta['date']}; {meta['hardware']}; budget {meta['budget_min']} min/run; seeds {meta['seeds']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| data set | model | training data | F1@0.5 | AP50 | AFNR | steps | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.model, r.train_data), []).append(r)
    for (ds, m, td), rs in groups.items():
        ok = [r for r in rs if r.status == "ok"]
        if not ok:
            lines.append(f"| {ds} | {m} | {td} | – | – | – | – | {rs[0].status[:70]} |")
            continue
        n_steps = [r.steps for r in ok if r.steps is not None]
        steps = str(int(np.mean(n_steps))) if n_steps else "–"
        lines.append(
            f"| {ds} | {m} | {td} | {_fmt([r.f1_50 for r in ok])} | {_fmt([r.ap50 for r in ok])} | {_fmt([r.afnr for r in ok])} | {steps} | {len(ok)}/{len(rs)} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no F1-vs-IoU plots")
        return
    for ds in sorted({r.dataset for r in results}):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        drawn = False
        for (d, m, td), rs in groups.items():
            curves = [r.f1_per_threshold for r in rs if d == ds and r.status == "ok" and r.f1_per_threshold]
            if not curves:
                continue
            colour = f"C{list(MODELS).index(m) % 10}"  # one colour per model, dashed = with synthetic data
            ax.plot(
                THRESHOLDS,
                np.mean(curves, axis=0),
                marker="o",
                ms=3,
                color=colour,
                ls="-" if td == "original" else "--",
                label=f"{m} ({td})",
            )
            drawn = True
        if drawn:
            ax.set_xlabel("IoU threshold")
            ax.set_ylabel("F1")
            ax.set_ylim(0, 1)
            ax.set_title(f"{ds}: F1 vs IoU threshold (mean over seeds)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(out / f"f1_vs_iou_{ds}.png", dpi=100)
        plt.close(fig)


def _hardware() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{model}, torch threads {torch.get_num_threads()}{gpu}"


def main(argv: list[str] | None = None) -> list[RunResult]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="bbbc018-cells,nuclei", help=f"comma list of {sorted(DATASETS)}")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {list(MODELS)}")
    ap.add_argument("--train-data", default="original,original+synth", help="comma list of original, original+synth")
    ap.add_argument(
        "--budget-min", type=float, default=10.0, help="wall-clock training minutes per run (same for every model)"
    )
    ap.add_argument("--seeds", default="0", help="comma list of seeds")
    ap.add_argument(
        "--synth-factor", type=float, default=None, help="synthetic images per real one (default 5; 1 with --quick)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="small networks, 128 px crops, few test images: a CPU smoke run"
    )
    ap.add_argument("--max-train", type=int, default=None, help="use the first N training images")
    ap.add_argument(
        "--max-test", type=int, default=None, help="score the first N test images (default all; 4 with --quick)"
    )
    ap.add_argument("--lr", type=float, default=None, help="optim.lr (default: the config's; U-Nets: unet.lr)")
    ap.add_argument("--batch-size", type=int, default=None, help="optim.batch_size (default as --lr)")
    ap.add_argument("--crop", type=int, default=None, help="data.crop_size, a multiple of 32 (default as --lr)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compare"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.synth_factor is None:
        args.synth_factor = 1.0 if args.quick else 5.0
    if args.max_test is None and args.quick:
        args.max_test = 4
    datasets = [d for d in args.datasets.split(",") if d]
    models = [m for m in args.models.split(",") if m]
    train_data = [t for t in args.train_data.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for name, pool in ((datasets, DATASETS), (models, MODELS), (train_data, ["original", "original+synth"])):
        bad = [n for n in name if n not in pool]
        if bad:
            ap.error(f"unknown {bad}; choose from {list(pool)}")

    data: dict[str, tuple[list, list]] = {}
    results: list[RunResult] = []
    for ds in datasets:
        d = DATASETS[ds]
        try:
            train = [s for spec, split in d["train"] for s in _load(spec, split, d["channels"], args.max_train)]
            test = [s for spec, split in d["test"] for s in _load(spec, split, d["channels"], args.max_test)]
            train = [s for s in train if s.labels is not None]
            test = [s for s in test if s.labels is not None]
            if not train or not test:
                raise RuntimeError("no labelled train or test images")
            data[ds] = (train, test)
            log.info("%s: %d train / %d test images", ds, len(train), len(test))
        except Exception as exc:
            log.warning("%s skipped: %s", ds, exc)
            results += [
                RunResult(ds, m, t, s, status=f"unavailable: {exc}") for m in models for t in train_data for s in seeds
            ]
    synth_cache: dict = {}
    combos = [(ds, m, t, s) for ds in data for t in train_data for m in models for s in seeds]
    for i, (ds, m, t, s) in enumerate(combos, 1):
        t0 = time.perf_counter()
        r = run_one(ds, m, t, s, args, data, synth_cache)
        results.append(r)
        log.info(
            "[%d/%d] %s %s %s seed %d: %s F1@0.5=%s AP50=%s AFNR=%s steps=%s (%.0f s)",
            i,
            len(combos),
            ds,
            m,
            t,
            s,
            r.status,
            r.f1_50,
            r.ap50,
            r.afnr,
            r.steps,
            time.perf_counter() - t0,
        )
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": _hardware(),
        "budget_min": args.budget_min,
        "seeds": seeds,
        "command": " ".join(["python", "benchmarks/compare_models.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "synth_factor": args.synth_factor,
    }
    write_outputs(results, args.out, meta)
    print((args.out / "results.md").read_text())
    return results


if __name__ == "__main__":
    main()

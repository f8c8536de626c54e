"""Fine-tuning on a person's corrections against fine-tuning without them, after ``lociseg adapt`` (BBBC018).

The person is simulated from the ground truth: on each corrected field the
``--cells`` GT cells the adapted model got worst (lowest best-IoU with any
predicted cell; missed cells first) are painted over the output as the GT
draws them, and predicted cells lying mostly inside one of them are erased
(:func:`lociseg.train.adapt.corrections_from_edit` then decides what counts
as corrected). Arms, each scored by F1 at IoU 0.5 / 0.75 pooled over the
held-out test fields (never corrected) and over the corrected fields:

* ``adapted``: ``adapt_model`` on all test fields (transductive, label-free);
* ``weak only``: :func:`~lociseg.train.corrections.finetune_on_corrections` with
  no corrections (the machine points and foreground alone), same minutes;
* ``corrected``: the same with the corrections;
* ``targets only`` / ``targets+corrected``: ``rest="targets"``, the adapt
  targets (supervised, as ``adapt`` trained) without / with the corrections
  pasted in.

``--reuse`` keeps an adapt run already in ``OUT/adapted`` (and its
segmentation, so the simulated corrections are the same).

Usage::

    python benchmarks/bench_hitl.py --out runs/bench_hitl --adapt-minutes 4 --minutes 3 --fields 2 --cells 10 \
        [--arms "weak only" corrected "targets only" targets+corrected] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_adapt import f1s  # (the same pooled F1 as the adapt benchmark; benchmarks/ is on the path)

from lociseg.data import load_dataset
from lociseg.io.labels import read_labels
from lociseg.predict.api import load_model
from lociseg.train.adapt import adapt_model
from lociseg.train.corrections import corrections_from_edit, finetune_on_corrections

#: Arm -> (what the rest of each image trains on, with the corrections).
ARMS = {
    "weak only": ("weak", False),
    "corrected": ("weak", True),
    "targets only": ("targets", False),
    "targets+corrected": ("targets", True),
}


def simulate_corrections(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    """``pred`` with the ``n`` worst-segmented GT cells painted in from ``gt`` (see the module docstring)."""
    edited = pred.copy()
    ids = [g for g in np.unique(gt) if g > 0]
    best = []
    for g in ids:
        inside = gt == g
        hits = np.unique(pred[inside])
        ious = [(inside & (pred == p)).sum() / (inside | (pred == p)).sum() for p in hits if p > 0]
        best.append(max(ious, default=0.0))
    nxt = int(pred.max()) + 1
    for k in np.argsort(best)[:n]:
        inside = gt == ids[k]
        for p in np.unique(pred[inside]):
            if p > 0 and (inside & (pred == p)).sum() > 0.5 * (pred == p).sum():
                edited[edited == p] = 0  # a predicted cell lying mostly in this one: erase it
        edited[inside] = nxt
        nxt += 1
    return edited


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--adapt-minutes", type=float, default=4.0)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--fields", type=int, default=2, help="fields the simulated person corrects")
    ap.add_argument("--cells", type=int, default=10, help="cells corrected per field")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--arms", nargs="+", default=["weak only", "corrected"], choices=sorted(ARMS))
    ap.add_argument("--reuse", action="store_true", help="keep the adapt run in OUT/adapted")
    args = ap.parse_args()

    ds = load_dataset("bbbc018@test", channels=["DNA", "actin"])
    names = list(ds.names)
    images = {n: ds[n].image for n in names}
    gts = {n: ds[n].labels for n in names}
    fixed, held = names[: args.fields], names[args.fields :]
    t0 = time.perf_counter()
    adapted = args.out / "adapted"
    if not (args.reuse and (adapted / "adapt.json").is_file()):
        adapt_model(
            [(n, images[n]) for n in names],
            adapted,
            nucleus=0,
            cytoplasm=1,
            minutes=args.adapt_minutes,
            overwrite=True,
            threads=args.threads,
            progress=False,
        )
    info = json.loads((adapted / "adapt.json").read_text())
    order = info["model_channels"]
    outputs = {n: read_labels(adapted / "segmentation" / f"{n}.tif") for n in names}
    corrections, counts = {}, {}
    for n in fixed:
        corrected, reviewed = corrections_from_edit(outputs[n], simulate_corrections(outputs[n], gts[n], args.cells))
        corrections[n] = (corrected, reviewed)
        counts[n] = int(len(np.unique(corrected)) - 1)
    runs = {"adapted": (adapted, info["train"]["step"])}
    for arm in args.arms:
        rest, with_corrections = ARMS[arm]
        folder = args.out / arm.replace(" ", "_").replace("+", "_")
        r = finetune_on_corrections(
            [(n, images[n]) for n in names],
            corrections if with_corrections else {},
            adapted,
            folder,
            minutes=args.minutes,
            overwrite=True,
            threads=args.threads,
            progress=False,
            rest=rest,
        )
        runs[arm] = (folder, r.train["step"])
    rows = []
    for arm, (folder, steps) in runs.items():
        seg = load_model(folder)
        pred = {n: seg.segment(images[n], channels=order)[0] for n in names}
        h, c = (
            f1s([gts[n] for n in held], [pred[n] for n in held]),
            f1s([gts[n] for n in fixed], [pred[n] for n in fixed]),
        )
        rows.append({"arm": arm, "steps": steps, "held_out": h, "corrected_fields": c})
        print(f"| {arm} | {steps} | {h[0]:.3f} / {h[1]:.3f} | {c[0]:.3f} / {c[1]:.3f} |", flush=True)
    summary = {"corrected cells": counts, "seconds": round(time.perf_counter() - t0), "rows": rows}
    print(json.dumps(counts), summary["seconds"], "s")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

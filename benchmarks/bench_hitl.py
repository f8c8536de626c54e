"""Fine-tuning on a person's corrections against fine-tuning without them, after ``lociseg adapt`` (BBBC018).

The person is simulated from the ground truth: on each corrected field the
``--cells`` GT cells the adapted model got worst (lowest best-IoU with any
predicted cell; missed cells first) are painted over the output as the GT
draws them, and predicted cells lying mostly inside one of them are erased
(:func:`lociseg.train.adapt.corrections_from_edit` then decides what counts
as corrected). Arms, each scored by F1 at IoU 0.5 / 0.75 pooled over the
held-out test fields (never corrected) and over the corrected fields:

* ``adapted``: ``adapt_model`` on all test fields (transductive, label-free);
* ``weak only``: :func:`~lociseg.train.adapt.finetune_on_corrections` with
  no corrections (the machine points and foreground alone), same minutes;
* ``corrected``: the same with the corrections.

Usage::

    python benchmarks/bench_hitl.py --out runs/bench_hitl --adapt-minutes 4 --minutes 3 --fields 2 --cells 10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lociseg.data import load_dataset
from lociseg.metrics import evaluate_pairs
from lociseg.predict.api import load_model
from lociseg.train.adapt import adapt_model, corrections_from_edit, finetune_on_corrections


def f1s(gts: list, preds: list) -> tuple[float, float]:
    """Pooled F1 at IoU 0.5 and 0.75."""
    per = evaluate_pairs(gts, preds).overall["sum"]["per_threshold"]
    t = np.asarray(per["thresholds"], float)
    out = []
    for thr in (0.5, 0.75):
        k = int(np.argmin(np.abs(t - thr)))
        tp, fp, fn = (float(np.asarray(per[c])[k]) for c in ("tp", "fp", "fn"))
        out.append(2 * tp / max(1.0, 2 * tp + fp + fn))
    return out[0], out[1]


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
    args = ap.parse_args()

    ds = load_dataset("bbbc018@test", channels=["DNA", "actin"])
    names = list(ds.names)
    images = {n: ds[n].image for n in names}
    gts = {n: ds[n].labels for n in names}
    fixed, held = names[: args.fields], names[args.fields :]
    t0 = time.perf_counter()
    res = adapt_model(
        [(n, images[n]) for n in names],
        args.out / "adapted",
        nucleus=0,
        cytoplasm=1,
        minutes=args.adapt_minutes,
        overwrite=True,
        threads=args.threads,
        progress=False,
    )
    order = res["info"]["model_channels"]
    outputs = {s["name"]: s["labels"] for s in res["samples"]}
    corrections, counts = {}, {}
    for n in fixed:
        corrected, reviewed = corrections_from_edit(outputs[n], simulate_corrections(outputs[n], gts[n], args.cells))
        corrections[n] = (corrected, reviewed)
        counts[n] = int(len(np.unique(corrected)) - 1)
    runs = {"adapted": (args.out / "adapted", res["train"]["step"])}
    for arm, corr in (("weak only", {}), ("corrected", corrections)):
        folder = args.out / arm.replace(" ", "_")
        r = finetune_on_corrections(
            [(n, images[n]) for n in names],
            corr,
            args.out / "adapted",
            folder,
            minutes=args.minutes,
            overwrite=True,
            threads=args.threads,
            progress=False,
        )
        runs[arm] = (folder, r["train"]["step"])
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
    info = {"corrected cells": counts, "seconds": round(time.perf_counter() - t0), "rows": rows}
    print(json.dumps(info["corrected cells"]), info["seconds"], "s")
    if args.json:
        args.json.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()

"""``lociseg adapt`` against the shipped model, the machine cells and supervised fine-tuning, per labelled set.

For each two-channel set the adaptation runs transductively on the test
images themselves (no label read at any point: not for the targets, the
checkpoint or any setting); the labels only score the results. Columns:

* ``shipped``: the model ``adapt`` starts from (``--init SET=MODEL``; default
  the shipped ``cells``), scale estimated per image. A set the start model
  was trained on should start from one that never saw it (leave-one-out);
* ``machine``: the machine-made cells (before merging);
* ``targets``: what ``adapt`` trained on (``--targets``, default the
  shipped model's cells plus the machine cells it missed);
* ``adapted``: the segmentation ``adapt`` wrote (the adapted model at each
  image's target cell size);
* ``supervised``: the same fine-tuning from the start model for the same minutes on
  the set's labelled train split (the ceiling with labels).

F1 at IoU 0.5 and 0.75, pooled over the test images. Prints a Markdown
table; ``--json`` saves the rows.

Usage::

    python benchmarks/bench_adapt.py --sets bbbc018 aitslab --minutes 5 --out runs/bench_adapt [--json rows.json] \\
        [--init bbbc018=runs/cells_aitslab_only]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from lociseg.annotate import read_cells
from lociseg.data import load_dataset
from lociseg.io.labels import read_labels
from lociseg.metrics import evaluate_pairs
from lociseg.predict.api import load_model
from lociseg.report.adapt import adapt
from lociseg.train import train
from lociseg.train.finetune import finetune_config

#: Channels (nucleus, cytoplasm) per set.
CHANNELS = {"bbbc018": ["DNA", "actin"], "aitslab": ["nucleus", "cell"]}


def f1s(gts: list, preds: list) -> tuple[float, float]:
    """Pooled F1 at IoU 0.5 and 0.75 (the report's per-threshold F1)."""
    per = evaluate_pairs(gts, preds).overall["sum"]["per_threshold"]
    t = np.asarray(per["thresholds"], float)
    f1 = np.asarray(per["f1"], float)
    return float(f1[int(np.argmin(np.abs(t - 0.5)))]), float(f1[int(np.argmin(np.abs(t - 0.75)))])


def run(
    base: str, minutes: float, out: Path, targets: str, threads: int, init: str = "cells", supervised: bool = True
) -> dict:
    chans = CHANNELS[base]
    test = load_dataset(f"{base}@test", channels=chans)
    names = list(test.names)
    gts = [test[n].labels for n in names]
    run_dir = out / f"{base}_{targets}"
    t0 = time.perf_counter()
    res, _ = adapt(
        [(n, test[n].image) for n in names],
        run_dir,
        nucleus=0,
        cytoplasm=1,
        minutes=minutes,
        targets=targets,
        init=init,
        overwrite=True,
        threads=threads,
        progress=False,
    )
    adapt_s = time.perf_counter() - t0
    kept = res.images
    g = [gts[names.index(n)] for n in kept]
    row = {
        "set": f"{base}@test",
        "images": len(kept),
        "targets": targets,
        "minutes": minutes,
        "init": init,
        "steps": res.train["step"],
        "adapt_s": round(adapt_s),
    }
    row["machine"] = f1s(g, [read_cells(run_dir / "annotations", n) for n in kept])
    row["targets_f1"] = f1s(g, [read_labels(run_dir / "annotations" / f"{n}.targets.tif") for n in kept])
    adapted = [read_labels(run_dir / "segmentation" / f"{n}.tif") for n in kept]
    row["adapted"] = f1s(g, adapted)
    # the label-free per-image quality estimate adapt wrote, against the true per-image F1@0.5 of its output
    est = json.loads((run_dir / "adapt.json").read_text()).get("quality", {})
    if len(est) == len(kept) > 2:
        true = [f1s([gt], [lab])[0] for gt, lab in zip(g, adapted, strict=True)]
        row["quality_rho"] = float(spearmanr([est[n]["quality"] for n in kept], true).statistic)
    shipped = load_model(init)
    row["shipped"] = f1s(g, [shipped.segment(test[n].image[[1, 0]])[0] for n in kept])
    print(json.dumps(row), flush=True)  # the unsupervised columns, before the long supervised run
    if not supervised:
        row["supervised"], row["supervised_steps"] = (float("nan"), float("nan")), 0
        return row
    # supervised fine-tuning from the same model, same budget, on the labelled train split
    tr = load_dataset(f"{base}@train", channels=chans)
    imgs = [tr[n].image[[1, 0]] for n in tr.names]
    labs = [tr[n].labels for n in tr.names]
    cfg = finetune_config(
        str(shipped.model.checkpoint_path), [1, 0], 0, 1, minutes=minutes, steps=None, lr=5e-4, threads=threads
    )
    sup = train(
        cfg.override({"init": init}),
        out / f"{base}_supervised",
        train_samples=(imgs, labs),
        overwrite=True,
        progress=False,
    )
    sup_model = load_model(out / f"{base}_supervised")
    row["supervised"] = f1s(g, [sup_model.segment(test[n].image[[1, 0]])[0] for n in kept])
    row["supervised_steps"] = sup["step"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(CHANNELS))
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--targets", default="model+machine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_adapt"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--init", nargs="*", default=[], metavar="SET=MODEL", help="start model per set (default: the shipped cells)"
    )
    ap.add_argument("--no-supervised", action="store_true", help="skip the supervised column (another run per set)")
    args = ap.parse_args()
    init = dict(kv.split("=", 1) for kv in args.init)
    torch.set_num_threads(args.threads)
    rows = [
        run(b, args.minutes, args.out, args.targets, args.threads, init.get(b, "cells"), not args.no_supervised)
        for b in args.sets
    ]
    print(
        "| set | images | start model | targets | minutes (steps) | start model F1@0.5 / 0.75 | machine | targets | adapted | "
        "supervised (steps) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        f = {k: f"{r[k][0]:.3f} / {r[k][1]:.3f}" for k in ("shipped", "machine", "targets_f1", "adapted", "supervised")}
        print(
            f"| {r['set']} | {r['images']} | {r['init']} | {r['targets']} | {r['minutes']} ({r['steps']}) | {f['shipped']} | "
            f"{f['machine']} | {f['targets_f1']} | {f['adapted']} | {f['supervised']} ({r['supervised_steps']}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""``lociseg adapt`` against its start model, the machine cells and the classical baseline, per labelled set.

For each two-channel set the adaptation runs transductively on the test
images themselves (no label read at any point: not for the targets, the
checkpoint or any setting); the labels only score the results. Sets
(:data:`SETS`): BBBC018, Aitslab and the tissue T cells test splits, and each
DeepCell cell line over all its fields. Columns:

* ``start``: the model ``adapt`` starts from (``--init SET=MODEL``; default
  the shipped ``cells``), run as ``adapt`` runs it for its targets
  (:func:`lociseg.predict.selftrain.cells_from_model`: automatic scale per
  image, flip averaging). A set the start model was trained on should start
  from one that never saw it (leave-one-out);
* ``machine``: the machine-made cells (before merging);
* ``targets``: what ``adapt`` trained on (``--targets``, default the rule
  of :class:`lociseg.train.adapt.AdaptOptions`);
* ``adapted``: the segmentation ``adapt`` wrote (the adapted model at each
  image's target cell size);
* ``classical``: the training-free baseline of
  ``benchmarks/classical_baseline.py``: its stored result when it scored
  exactly these images, else its pipeline run here on them;
* ``supervised`` (sets with a labelled train split, unless
  ``--no-supervised``): the same fine-tuning from the start model, same
  budget, on that split (the ceiling with labels).

F1 at IoU 0.5 and 0.75, pooled over the test images; on a partially
labelled set (T cells: only marker-positive cells are labelled) predictions
lying mostly off labelled cells are not counted
(:func:`lociseg.metrics.drop_unlabelled`). ``--steps`` caps the training
steps (a budget that holds under CPU contention, where ``--minutes`` gives
few steps); both are reported with the wall time. Prints a Markdown table;
``--json`` saves the rows, ``--table`` prints the table of saved rows.

Usage::

    python benchmarks/bench_adapt.py --sets tcells deepcell-BMDM --steps 300 --minutes 120 --threads 1 \\
        --no-supervised --out runs/bench_adapt [--json rows.json] \\
        [--init deepcell-3T3=runs/loo/cells_deepcell-3T3_1500_init-cells-r2/last]
    python benchmarks/bench_adapt.py --table rows.json more_rows.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from classical_baseline import SETS as CLASSICAL_SETS
from classical_baseline import segment as classical_segment
from leave_one_out import DEEPCELL_ALL
from scipy.stats import spearmanr

from lociseg.annotate import read_cells
from lociseg.data import load_dataset
from lociseg.io.labels import read_labels
from lociseg.metrics import evaluate_pairs
from lociseg.predict.api import load_model
from lociseg.predict.selftrain import cells_from_model
from lociseg.report.adapt import adapt
from lociseg.train import train
from lociseg.train.adapt import AdaptOptions, AdaptRun
from lociseg.train.finetune import finetune_config

HERE = Path(__file__).resolve().parent
CLASSICAL_DIR = HERE / "classical"


@dataclass(frozen=True)
class BenchSet:
    """One benchmarked set.

    Attributes
    ----------
    spec : str
        Data spec of the images adapted to and scored.
    channels : tuple of str
        Channel names (nucleus, cytoplasm).
    classical : str
        Row of ``benchmarks/classical_baseline.py`` (its ``set`` field) holding these images.
    partial : bool
        Only some cells are labelled: predictions off labelled cells do not count.
    train : str or None
        Labelled train split for the supervised column (None: the set has none).
    """

    spec: str
    channels: tuple[str, str]
    classical: str
    partial: bool = False
    train: str | None = None


#: The labelled two-channel sets.
SETS: dict[str, BenchSet] = {
    "bbbc018": BenchSet("bbbc018@test", ("DNA", "actin"), "bbbc018@test", train="bbbc018@train"),
    "aitslab": BenchSet("aitslab@test", ("nucleus", "cell"), "aitslab@test", train="aitslab@train"),
    **{
        f"deepcell-{line}": BenchSet(f"deepcell#{','.join(fields)}", ("nucleus", "phase"), f"deepcell:{line}")
        for line, fields in DEEPCELL_ALL.items()
    },
    "tcells": BenchSet("tcells@test", ("DAPI", "membrane"), "tcells@test", partial=True),
}

NAN2 = (float("nan"), float("nan"))


def f1s(gts: list, preds: list, *, partial: bool = False) -> tuple[float, float]:
    """Pooled F1 at IoU 0.5 and 0.75 (the report's per-threshold F1); ``partial``: partial labels."""
    per = evaluate_pairs(gts, preds, partial_labels=partial).overall["sum"]["per_threshold"]
    t = np.asarray(per["thresholds"], float)
    f1 = np.asarray(per["f1"], float)
    return float(f1[int(np.argmin(np.abs(t - 0.5)))]), float(f1[int(np.argmin(np.abs(t - 0.75)))])


def classical_f1s(entry: BenchSet, images: dict[str, np.ndarray], gts: list, *, stored_dir: Path) -> dict:
    """The classical baseline on ``images`` (name -> (nucleus, cytoplasm) image): stored when it scored exactly these.

    Returns F1@0.5 / F1@0.75 and where they came from (``stored``: the result
    file; ``run``: :func:`classical_baseline.segment` run on the images).
    """
    path = stored_dir / (entry.classical.replace(":", "_").replace("@", "_").replace("/", "_") + ".json")
    if path.is_file():
        rec = json.loads(path.read_text())
        same = sorted(im["name"] for im in rec.get("per_image", [])) == sorted(images)
        if same and rec.get("limit") is None and bool(rec.get("partial_labels")) == entry.partial:
            return {"classical": (float(rec["f1_50"]), float(rec["f1_75"])), "classical_from": "stored"}
    pipeline = CLASSICAL_SETS[entry.classical.split(":")[0]].pipeline
    # the baseline's samples hold (cell, nucleus)
    preds = [classical_segment(SimpleNamespace(image=im[[1, 0]]), pipeline) for im in images.values()]
    return {"classical": f1s(gts, preds, partial=entry.partial), "classical_from": "run"}


def start_cells(run: AdaptRun) -> list[np.ndarray]:
    """The start model's cells of each adapted image, as ``adapt`` draws them for its targets."""
    order = run.info["model_channels"]
    return [cells_from_model(s.image, run.start, channels=order, fill=None)[0] for s in run.samples]


def score_adapt(run_dir: Path, run: AdaptRun, gts: list, partial: bool) -> dict:
    """F1 pairs of the start model, machine cells, targets and adapted model, and the quality estimate's rho."""
    kept = run.images
    row = {
        "start": f1s(gts, start_cells(run), partial=partial),
        "machine": f1s(gts, [read_cells(run_dir / "annotations", n) for n in kept], partial=partial),
        "targets_f1": f1s(
            gts, [read_labels(run_dir / "annotations" / f"{n}.targets.tif") for n in kept], partial=partial
        ),
    }
    adapted = [read_labels(run_dir / "segmentation" / f"{n}.tif") for n in kept]
    row["adapted"] = f1s(gts, adapted, partial=partial)
    # the label-free per-image quality estimate adapt wrote, against the true per-image F1@0.5 of its output
    est = json.loads((run_dir / "adapt.json").read_text()).get("quality", {})
    if len(est) == len(kept) > 2:
        true = [f1s([gt], [lab], partial=partial)[0] for gt, lab in zip(gts, adapted, strict=True)]
        row["quality_rho"] = float(spearmanr([est[n]["quality"] for n in kept], true).statistic)
    return row


def supervised(entry: BenchSet, init: str, out: Path, budget: dict, gts: list, images: list) -> dict:
    """Supervised fine-tuning from the start model on the set's labelled train split, same budget; scored."""
    if entry.train is None:
        return {"supervised": NAN2, "supervised_steps": 0}
    tr = load_dataset(entry.train, channels=list(entry.channels))
    start = load_model(init)
    cfg = finetune_config(str(start.model.checkpoint_path), [1, 0], 0, 1, lr=5e-4, **budget)
    info = train(
        cfg.override({"init": init}),
        out,
        train_samples=([tr[n].image[[1, 0]] for n in tr.names], [tr[n].labels for n in tr.names]),
        overwrite=True,
        progress=False,
    )
    model = load_model(out)
    preds = [model.segment(im[[1, 0]])[0] for im in images]
    return {"supervised": f1s(gts, preds, partial=entry.partial), "supervised_steps": info["step"]}


def run(name: str, args: argparse.Namespace, init: str) -> dict:
    """Adapt ``init`` to the images of set ``name`` and score every column."""
    entry = SETS[name]
    test = load_dataset(entry.spec, channels=list(entry.channels))
    names = list(test.names)
    samples = {n: test[n] for n in names}
    run_dir = args.out / f"{name}_{args.targets}"
    t0 = time.perf_counter()
    res, _ = adapt(
        [(n, samples[n].image) for n in names],
        run_dir,
        nucleus=0,
        cytoplasm=1,
        minutes=args.minutes,
        steps=args.steps,
        targets=args.targets,
        init=init,
        overwrite=True,
        threads=args.threads,
        progress=False,
    )
    kept = res.images
    gts = [samples[n].labels for n in kept]
    row = {
        "set": name,
        "spec": entry.spec,
        "partial_labels": entry.partial,
        "images": len(kept),
        "targets": args.targets,
        "init": init,
        "minutes": args.minutes,
        "max_steps": args.steps,
        "steps": res.train["step"],
        "adapt_s": round(time.perf_counter() - t0),
        "skipped": res.skipped,
    }
    row.update(score_adapt(run_dir, res, gts, entry.partial))
    row.update(classical_f1s(entry, {n: samples[n].image for n in kept}, gts, stored_dir=CLASSICAL_DIR))
    print(json.dumps(row), flush=True)  # the unsupervised columns, before the long supervised run
    if args.no_supervised:
        return row | {"supervised": NAN2, "supervised_steps": 0}
    budget = {"minutes": args.minutes, "steps": args.steps, "threads": args.threads}
    images = [samples[n].image for n in kept]
    return row | supervised(entry, init, args.out / f"{name}_supervised", budget, gts, images)


def short(model: str) -> str:
    """A start model as the table names it: a shipped name, or a checkpoint folder with its run's name."""
    p = Path(model)
    return f"{p.parent.name}/{p.name}" if p.name in ("last", "best") else p.name


def table(rows: list[dict]) -> str:
    """The Markdown table of the rows."""
    cols = ("start", "machine", "targets_f1", "adapted", "classical", "supervised")
    lines = [
        "| set | images | start model | targets | steps (max; minutes budget; wall s) | start F1@0.5 / 0.75 | "
        "machine | targets | adapted | classical | supervised (steps) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        f = {k: " / ".join("-" if math.isnan(v) else f"{v:.3f}" for v in r[k]) for k in cols}
        name = r["set"] + (" (partial labels)" if r["partial_labels"] else "")
        lines.append(
            f"| {name} | {r['images']} | {short(r['init'])} | {r['targets']} | {r['steps']} ({r['max_steps']}; "
            f"{r['minutes']}; {r['adapt_s']}) | {f['start']} | {f['machine']} | {f['targets_f1']} | "
            f"{f['adapted']} | {f['classical']} | {f['supervised']} ({r['supervised_steps']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget of each training")
    ap.add_argument("--steps", type=int, default=None, help="cap on the training steps of each training")
    ap.add_argument("--targets", default=AdaptOptions.targets)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_adapt"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--init", nargs="*", default=[], metavar="SET=MODEL", help="start model per set (default: the shipped cells)"
    )
    ap.add_argument("--no-supervised", action="store_true", help="skip the supervised column (another run per set)")
    ap.add_argument("--table", nargs="+", type=Path, default=None, metavar="JSON", help="only print the rows' table")
    args = ap.parse_args()
    if args.table:
        print(table([r for p in args.table for r in json.loads(p.read_text())]))
        return
    init = dict(kv.split("=", 1) for kv in args.init)
    unknown = sorted(set(init) - set(SETS))
    if unknown:
        raise SystemExit(f"--init for unknown set(s) {unknown}; known: {', '.join(SETS)}")
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.sets:
        rows.append(run(name, args, init.get(name, "cells")))
        if args.json:  # after each set: a long run keeps what it finished
            args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()

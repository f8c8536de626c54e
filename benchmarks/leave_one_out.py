"""Leave-one-set-out: for each labelled set, a model trained on all the others, scored on it; resumable.

A model that never saw a set is the honest figure for a user's new images.
Cell sets: BBBC018, Aitslab, Usiigaci (phase contrast) and each DeepCell cell
line; the tissue T cells are never trained on (only marker-positive cells are
labelled), so every model is "leave-one-out" for them. BMDM and MCF10A have
one DeepCell field each, kept in the test split, so the model trained on
everything is already leave-one-out for them. Nucleus sets: Koyuncu,
DSB2018, BBBC018 nuclei, Aitslab nuclei, Coelho (110 px).

Every model trains with :func:`lociseg.train.train` on the recipe of
``configs/cells_generalist.yaml`` / ``configs/nuclei_supervised.yaml`` from
random weights for ``--steps`` steps of ``--crop`` px crops on one thread
(a step budget: reproducible under CPU contention), then every held-out
image is segmented with automatic scale and scored (F1@0.5, F1@0.75, AP75,
pooled). Finished runs are appended to ``--results`` (JSONL) and skipped on
rerun; an interrupted run continues from its ``last/`` checkpoint.

Usage::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/leave_one_out.py --kind cells --sets bbbc018,aitslab
    python benchmarks/leave_one_out.py --report     # the table beside the results: benchmarks/loo/results.md
    python benchmarks/leave_one_out.py --score MODEL --kind cells     # a given model on every test split
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger("leave_one_out")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "loo" / "results.jsonl"
CONFIGS = HERE.parent / "configs"

DEEPCELL_TRAIN = {
    "3T3": ["3T3_set1", "3T3_set2"],
    "HeLa-S3": ["HeLa-S3_set1", "HeLa-S3_set2", "HeLa-S3_set3"],
    "RAW264.7": ["RAW264.7_set1", "RAW264.7_set2"],
}
DEEPCELL_ALL = {
    "3T3": ["3T3_set1", "3T3_set2", "3T3_set3"],
    "BMDM": ["BMDM_set1"],
    "HeLa-S3": [f"HeLa-S3_set{k}" for k in range(1, 6)],
    "MCF10A": ["MCF10A_set1"],
    "RAW264.7": ["RAW264.7_set1", "RAW264.7_set2", "RAW264.7_set3"],
}


def _deepcell_train(without: str | None) -> list[str]:
    names = [n for line, ns in DEEPCELL_TRAIN.items() if line != without for n in ns]
    return [f"deepcell@train#{','.join(names)}"]


def cell_sets() -> dict[str, dict[str, Any]]:
    """Held-out set -> its training specs (when others train on it) and its test spec."""
    sets: dict[str, dict[str, Any]] = {
        "bbbc018": {"train": ["bbbc018@train"], "val": ["bbbc018@val"], "test": "bbbc018@test"},
        "aitslab": {"train": ["aitslab@train"], "val": ["aitslab@val"], "test": "aitslab@test"},
        "usiigaci": {"train": ["usiigaci@train"], "val": ["usiigaci@val"], "test": "usiigaci@test"},
        "tcells": {"train": [], "val": [], "test": "tcells@test"},
    }
    for line, names in DEEPCELL_ALL.items():
        # a line held out is scored on all its fields: the model saw none of them
        sets[f"deepcell-{line}"] = {
            "train": [],
            "val": [],
            "test": f"deepcell#{','.join(names)}",
            "line": line,
            "trains": line in DEEPCELL_TRAIN,  # its fields train the others (from the deepcell@train spec)
        }
    return sets


def nucleus_sets() -> dict[str, dict[str, Any]]:
    """Held-out nucleus set -> its training / validation specs and its test spec."""
    return {
        "koyuncu": {"train": ["koyuncu@train"], "val": ["koyuncu@val"], "test": "koyuncu@test"},
        "dsb2018": {"train": ["dsb2018-train@train"], "val": ["dsb2018-train@val"], "test": "dsb2018-test"},
        "bbbc018-nuclei": {
            "train": ["bbbc018:nuclei@train"],
            "val": ["bbbc018:nuclei@val"],
            "test": "bbbc018:nuclei@test",
        },
        "aitslab-nuclei": {
            "train": ["aitslab-nuclei@train", "aitslab:nuclei@train"],
            "val": ["aitslab-nuclei@val", "aitslab:nuclei@val"],
            "test": "aitslab-nuclei@test",
        },
        "coelho": {"train": ["coelho@train"], "val": ["coelho@val"], "test": "coelho@test"},
        "deepcell-nuclei": {"train": ["deepcell:nuclei@train"], "val": [], "test": "deepcell:nuclei@test"},
    }


def sets_for(kind: str) -> dict[str, dict[str, Any]]:
    """The held-out sets of a model kind (``cells`` or ``nuclei``)."""
    return cell_sets() if kind == "cells" else nucleus_sets()


def training_specs(kind: str, held_out: str) -> tuple[list[str], list[str]]:
    """Train and validation specs of the model that never sees ``held_out``."""
    sets = sets_for(kind)
    train, val = [], []
    for name, s in sets.items():
        if name != held_out:
            train += s["train"]
            val += s["val"]
    if kind == "cells":
        line = sets[held_out].get("line")
        train += _deepcell_train(line)
        val += [] if line == "HeLa-S3" else ["deepcell@val"]  # the only val field is HeLa-S3's
    return train, val


def _source(spec: str) -> str:
    """The data source a spec reads (``deepcell@train#3T3_set1`` -> ``deepcell``)."""
    for sep in "@#:":
        spec = spec.split(sep)[0]
    return spec


def _fields(spec: str) -> set[str]:
    """The named fields of a spec (``deepcell#a,b`` -> {a, b}); empty when it names none."""
    return set(spec.split("#", 1)[1].split(",")) if "#" in spec else set()


def init_leak(init: Path, kind: str, held_out: str) -> str | None:
    """Why ``init`` cannot start a model for ``held_out`` (its own training saw that set), or None.

    Read from the ``config.yaml`` of the init checkpoint: a source it trained on that the held-out set
    comes from (for DeepCell, one of the held-out line's fields) is a leak.
    """
    cfg = yaml.safe_load((init / "config.yaml").read_text()) or {}
    seen = list((cfg.get("data") or {}).get("train") or []) + list((cfg.get("data") or {}).get("val") or [])
    target = sets_for(kind)[held_out]
    for spec in seen:
        for mine in [*target["train"], target["test"]]:
            if _source(spec) != _source(mine):
                continue
            if _source(spec) != "deepcell" or not _fields(spec) or _fields(spec) & _fields(mine):
                return f"{init} trained on {spec}, which holds {held_out}"
    return None


def run_config(kind: str, held_out: str, args: argparse.Namespace) -> Any:
    """The experiment config of one leave-one-out model (the shipped recipe and a step budget).

    From random weights (learning rate 2e-3), or from ``--init`` (a checkpoint that never saw the
    held-out set, at the recipe's fine-tuning rate).
    """
    from lociseg.train import ExperimentConfig

    base = CONFIGS / ("cells_generalist.yaml" if kind == "cells" else "nuclei_supervised.yaml")
    cfg = ExperimentConfig.from_yaml(base)
    train, val = training_specs(kind, held_out)
    start = {"init": str(args.init)} if args.init else {"optim.lr": 2e-3, "optim.warmup_steps": 200}
    return cfg.override(
        {
            **start,
            "data.train": train,
            "data.val": val,
            "data.crop_size": args.crop,
            "optim.steps": args.steps,
            "optim.budget_minutes": 0.0,
            "optim.val_every": max(1, args.steps // 4),
            "optim.checkpoint_every": 200,
            "optim.threads": 1,
        }
    )


def score(model: Any, spec: str) -> dict[str, Any]:
    """Segment every image of ``spec`` with automatic scale and score it (pooled over the images).

    Channels by role: cell stain then nucleus (two-channel models), or the
    nuclear stain; a set without a nuclear channel gets a zero plane.
    """
    from lociseg.metrics import evaluate_pairs
    from lociseg.train.data import load_optional_channels

    want = int(model.spec.in_channels)
    channels = ["cell", "nucleus"] if want == 2 else ["nuclei"]
    ds = load_optional_channels(spec, channels, ["nucleus"])[0]  # phase contrast: the cell channel alone
    gts, preds, scores, names = [], [], [], []
    t0 = time.process_time()
    for i in range(len(ds)):
        s = ds[i]
        image = np.asarray(s.image)
        if image.shape[0] < want:  # no nuclear stain: a zero plane, as a model with optional channels does
            image = np.concatenate([image, np.zeros((want - image.shape[0], *image.shape[1:]), image.dtype)])
        labels, table = model.segment(image, diameter=None)
        gts.append(s.labels)
        preds.append(labels)
        scores.append(np.asarray(table.score))
        names.append(s.name)
    partial = bool(ds.info.get("partial_labels"))  # tissue T cells: predictions off labelled cells do not count
    r = evaluate_pairs(gts, preds, scores, names=names, partial_labels=partial).overall["sum"]
    per = r["per_threshold"]
    f1_75 = float(np.asarray(per["f1"])[int(np.argmin(np.abs(np.asarray(per["thresholds"], float) - 0.75)))])
    return {
        "test": spec,
        "size_model": model.size_model is not None,  # one-pass automatic scale, else the ladder search
        "images": len(names),
        "f1_50": float(r["f1_50"]),
        "f1_75": f1_75,
        "ap75": float(r["ap75"]),
        "score_cpu_s": time.process_time() - t0,
    }


def read_results(path: Path) -> list[dict[str, Any]]:
    """Finished records of the results file (empty when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append one record (one line) to the results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=float) + "\n")


def run_one(kind: str, held_out: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """Train (or resume) the model without ``held_out`` and score it there; None when a signal stopped it."""
    from lociseg.models.checkpoint import recover_checkpoint
    from lociseg.train import train

    tag = f"_init-{args.init.name}" if args.init else ""
    run_dir = args.runs / f"{kind}_{held_out}_{args.steps}{tag}"
    resume = bool(recover_checkpoint(run_dir / "last"))
    t0 = time.process_time()
    info = train(run_config(kind, held_out, args), run_dir, resume=resume, overwrite=not resume, progress=False)
    if info.get("interrupted"):
        return None
    train_cpu_min = (time.process_time() - t0) / 60
    rec = {"kind": kind, "held_out": held_out, "steps": args.steps, "crop": args.crop, "date": str(date.today())}
    rec["init"] = str(args.init) if args.init else None
    rec.update(score_run(run_dir, kind, held_out, fit_size=args.fit_size))
    rec["train_cpu_min"] = train_cpu_min
    rec["train"] = training_specs(kind, held_out)[0]
    return rec


def score_run(run_dir: Path, kind: str, held_out: str, *, fit_size: bool = True) -> dict[str, Any]:
    """Score ``run_dir/last`` on the held-out test split, after fitting its one-pass size model.

    The size model is fitted on the run's own training sets (``data.train`` of its config: never the
    held-out set), so the automatic scale is the one the model would ship with.
    """
    from lociseg.predict.api import load_model

    last = run_dir / "last"
    if fit_size and not (last / "size_model.json").is_file():
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, str(HERE / "fit_size_model.py"), "--model", str(last), "--threads", "1"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        log.info("size model fitted in %.0f s", time.perf_counter() - t0)
    return score(load_model(last, device="cpu"), sets_for(kind)[held_out]["test"])


def rescore(args: argparse.Namespace) -> None:
    """Refit the size model and score again every finished run scored without one (records replaced)."""
    records = read_results(args.results)
    for r in records:
        if "held_out" not in r or r.get("size_model"):
            continue
        tag = f"_init-{Path(r['init']).name}" if r.get("init") else ""
        run_dir = args.runs / f"{r['kind']}_{r['held_out']}_{r['steps']}{tag}"
        if not (run_dir / "last").is_dir():
            log.warning("no run folder %s: %s kept as scored", run_dir, r["held_out"])
            continue
        key = {k: r.get(k) for k in ("kind", "held_out", "steps", "crop", "init")}
        new = {**r, **score_run(run_dir, r["kind"], r["held_out"])}
        log.info("%s rescored: F1@0.5 %.3f", r["held_out"], new["f1_50"])
        # read again before writing: a campaign may have appended rows meanwhile
        now = [new if all(x.get(k) == v for k, v in key.items()) else x for x in read_results(args.results)]
        args.results.write_text("".join(json.dumps(x, default=float) + "\n" for x in now))


def score_model(model_path: str, kind: str, results: Path) -> None:
    """Score one model (e.g. the shipped one) on the test split of every set of its kind."""
    from lociseg.predict.api import load_model

    model = load_model(model_path, device="cpu")
    for name, s in sets_for(kind).items():
        rec = {"kind": kind, "model": model_path, "set": name, "date": str(date.today())}
        rec.update(score(model, s["test"]))
        append_result(results, rec)
        log.info("%s on %s: F1@0.5 %.3f F1@0.75 %.3f", model_path, name, rec["f1_50"], rec["f1_75"])


def table(records: list[dict[str, Any]]) -> str:
    """Markdown: per held-out set, the leave-one-out model and every scored model."""
    lines = [
        "| kind | set | model | images | F1@0.5 | F1@0.75 | AP75 | steps | scale |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        name = r.get("held_out") or r.get("set")
        start = f", from {Path(r['init']).name}" if r.get("init") else ""
        who = f"leave-one-out ({r['steps']} steps, {r['crop']} px{start})" if "held_out" in r else r["model"]
        lines.append(
            f"| {r['kind']} | {name} | {who} | {r['images']} | {r['f1_50']:.3f} | {r['f1_75']:.3f} "
            f"| {r['ap75']:.3f} | {r.get('steps', '')} | {'one-pass' if r.get('size_model') else 'ladder'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=("cells", "nuclei"), default="cells")
    ap.add_argument("--sets", default=None, help="comma list of held-out sets (default: all of the kind)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--runs", type=Path, default=Path("runs/loo"))
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start every model from this checkpoint folder; refused for a held-out set it trained on",
    )
    ap.add_argument(
        "--no-fit-size",
        dest="fit_size",
        action="store_false",
        help="score with the ladder search instead of fitting each run's one-pass size model first",
    )
    ap.add_argument("--rescore", action="store_true", help="fit size models for runs scored without one, rescore")
    ap.add_argument("--score", default=None, help="only score this model on every test split of --kind")
    ap.add_argument("--report", action="store_true", help="only rewrite table.md from the results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.score:
        score_model(args.score, args.kind, args.results)
    elif args.rescore:
        rescore(args)
    elif not args.report:
        held = [n for n, s in sets_for(args.kind).items() if s["train"] or s.get("trains")]
        names = args.sets.split(",") if args.sets else held
        init = str(args.init) if args.init else None
        done = {
            (r["kind"], r["held_out"], r["steps"], r["crop"], r.get("init"))
            for r in read_results(args.results)
            if "held_out" in r
        }
        for name in names:
            if (args.kind, name, args.steps, args.crop, init) in done:
                continue
            leak = init_leak(args.init, args.kind, name) if args.init else None
            if leak:
                log.warning("skipping %s: %s", name, leak)
                continue
            log.info("leave out %s (%s)", name, args.kind)
            rec = run_one(args.kind, name, args)
            if rec is None:
                raise SystemExit(1)
            append_result(args.results, rec)
            log.info("%s: F1@0.5 %.3f F1@0.75 %.3f", name, rec["f1_50"], rec["f1_75"])
    args.results.with_suffix(".md").write_text(table(read_results(args.results)))


if __name__ == "__main__":
    main()

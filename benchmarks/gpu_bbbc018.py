"""The BBBC018 zero-label vs supervised measurement, packed for one short GPU lease.

Issue 4's last open figure (weak F1@0.5 >= 0.92 on BBBC018 test) needs
training at a scale the 2-core project machine cannot reach; a lent GPU
machine gives a session about 15 minutes in all and 10 per command, with
no access to ``../shared``. This script turns that into two steps:

``pack`` (on the project machine) writes the data the run needs into a
git-ignored folder (BBBC018's DNA and actin ``.DIB`` files and the outlines,
as they are, in one ``tar.xz``: 27 MiB, the pH3 channel left out), and
PyMaxflow, the one dependency the device's Python 3.12 lacks, is fetched as
a wheel into the git-ignored ``.whl``::

    python benchmarks/gpu_bbbc018.py pack --out carry
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .whl PyMaxflow

``run`` (on the GPU machine, in one command) unpacks it, makes the machine
annotations of the train fields, trains the zero-label model (machine-made
cells, no hand-drawn label used) and the supervised model (hand-drawn
cells) *at the same time* on the one GPU, each for ``--minutes``, scores
both on the test fields (``--diameter auto``, then with flips and overlaps
by probability) and writes to ``--out``: ``results.json``, ``results.md``,
``zero_label.tar`` and ``supervised.tar`` (each model's last checkpoint:
``model.safetensors`` in float16, ``config.yaml``, ``metrics.json``) and
``logs.tar``.
Through the device tool (see ``/work/.library/device/README.md``)::

    run(carry=["carry", ".whl"], timeout_s=590, command=
        "python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl"
        " && export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_bbbc018.py run"
        " --data carry/bbbc018.tar.xz --out $OUT --minutes 5 --preset base")

Budget: about a minute to unpack, annotate and start, ``--minutes`` of
training, then the scorings, all in parallel (per model: the test fields,
the test fields with flips, with ``--fit`` the train fields); keep the
whole under the device's 10 minutes a command. Every step is also runnable
on the CPU with small numbers (``--device cpu --minutes 1 --steps 30
--test-limit 2``), which is how the script itself is checked here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path

from lociseg.models.checkpoint import half_checkpoint

ROOT = Path(__file__).resolve().parent.parent
#: The BBBC018 files the run reads: two channels and the outlines (pH3 is not used).
PACKED = ("BBBC018_v1_images/*-DNA.DIB", "BBBC018_v1_images/*-actin.DIB", "BBBC018_v1_outlines/*.png")
MODELS = {  # name -> (config, extra overrides); every one keeps its last checkpoint, as a weak run must
    "zero_label": ("configs/bbbc018_cells_machine.yaml", []),  # supervised loss on the machine-made cells
    "supervised": ("configs/bbbc018_cells_supervised.yaml", ["optim.select_best=false"]),  # hand-drawn cells
    "weak": ("configs/bbbc018_cells_weak.yaml", []),  # the LACSS weak loss on points + foreground
    "weak_aux": ("configs/bbbc018_cells_weak_aux.yaml", []),
}


def pack(data_root: Path, out: Path) -> Path:
    """Write ``out/bbbc018.tar.xz`` with the files in :data:`PACKED`, paths relative to ``data_root``."""
    src = data_root / "bbbc018"
    files = sorted(p for pattern in PACKED for p in src.glob(pattern))
    if not files:
        raise SystemExit(f"no BBBC018 files under {src} (set LOCISEG_DATA)")
    out.mkdir(parents=True, exist_ok=True)
    target = out / "bbbc018.tar.xz"
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:xz") as tar:
        for p in files:
            tar.add(p, arcname=str(p.relative_to(data_root)))
    partial.replace(target)  # never leave a truncated archive under the final name
    return target


def unpack(archive: Path, dest: Path) -> Path:
    """Extract a :func:`pack` archive into ``dest`` (a data root with ``bbbc018/``)."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    if not (dest / "bbbc018" / "BBBC018_v1_images").is_dir():
        raise SystemExit(f"{archive}: not a pack of BBBC018 (no bbbc018/BBBC018_v1_images inside)")
    return dest


def _lociseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "lociseg", *args]


def train_commands(work: Path, annotations: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    """One ``lociseg train`` command per model, with the same budget, backbone and batch."""
    common = [
        f"lacss.backbone.preset={args.preset}",
        f"optim.budget_minutes={args.minutes}",
        f"optim.steps={args.steps}",
        f"optim.batch_size={args.batch_size}",
        f"optim.threads={args.threads}",
        f"optim.workers={args.workers}",
        f"optim.val_every={args.steps}",
        f"data.annotations=[{annotations}]",
    ]
    cmds = {}
    for name in args.models:
        config, extra = MODELS[name]
        sets = [x for kv in common + extra + args.set for x in ("--set", kv)]
        cmds[name] = _lociseg("train", "-c", str(ROOT / config), "-o", str(work / name), "--device", args.device, *sets)
    return cmds


#: The scorings of each model: key in results.json -> (data set, flips + overlaps by probability).
SCORINGS = {
    "test": ("bbbc018@test", False),
    "test_flips_probability": ("bbbc018@test", True),
    "train_fields": ("bbbc018@train", False),
}


def evaluate_all(models: dict[str, Path], args: argparse.Namespace, work: Path) -> dict[str, dict[str, dict]]:
    """Score every checkpoint with ``evaluate_model.py`` (auto diameter), all scorings at once in
    parallel processes (each one mostly waits on its own start-up and the CPU side of pasting)."""
    keys = [k for k in SCORINGS if k != "train_fields" or args.fit]
    procs = {}
    for name, ckpt in models.items():
        for key in keys:
            data, augment = SCORINGS[key]
            out = work / f"eval_{name}_{key}.json"
            cmd = [
                sys.executable,
                str(ROOT / "benchmarks" / "evaluate_model.py"),
                "--model",
                str(ckpt),
                "--data",
                data,
                "--channels",
                "actin,DNA",
                "--diameter",
                "auto",
                "--device",
                args.device,
                "--json",
                str(out),
            ]
            cmd += ["--augment", "--overlaps", "probability"] if augment else []
            cmd += ["--limit", str(args.test_limit)] if args.test_limit else []
            env = dict(os.environ, OMP_NUM_THREADS="2")  # several at once: don't oversubscribe the cores
            procs[name, key] = (subprocess.Popen(cmd, env=env), out)
    failed = [f"{n}/{k}" for (n, k), (p, _) in procs.items() if p.wait() != 0]
    if failed:
        raise SystemExit(f"scoring failed: {failed}")
    scores: dict[str, dict[str, dict]] = {name: {} for name in models}
    for (name, key), (_, out) in procs.items():
        scores[name][key] = json.loads(out.read_text())
    return scores


def _tar(out: Path, name: str, members: dict[str, Path]) -> None:
    """``out/name``: a tar of the existing paths, each under its key."""
    with tarfile.open(out / name, "w") as tar:
        for arcname, p in members.items():
            if p.exists():
                tar.add(p, arcname=arcname)


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="lociseg_gpu_"))
    t0 = time.perf_counter()
    # the annotation, trainings and scorings (child processes) read the unpacked copy
    os.environ["LOCISEG_DATA"] = str(unpack(Path(args.data), work / "data"))
    stamps = {"unpack_s": time.perf_counter() - t0}

    annotations = work / "ann_train"
    subprocess.run(_lociseg("annotate", "bbbc018@train", "-o", str(annotations), "--gt", "--no-sheets"), check=True)
    stamps["annotate_s"] = time.perf_counter() - t0 - sum(stamps.values())

    logs = {name: open(work / f"{name}.log", "w") for name in args.models}  # noqa: SIM115 - closed after the runs
    procs = {
        name: subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, cmd in train_commands(work, annotations, args).items()
    }
    codes = {name: p.wait() for name, p in procs.items()}
    for fh in logs.values():
        fh.close()
    stamps["train_s"] = time.perf_counter() - t0 - sum(stamps.values())
    _tar(
        out,
        "logs.tar",
        {
            **{f"{n}.log": work / f"{n}.log" for n in args.models},
            **{f"{n}_log.csv": work / n / "log.csv" for n in args.models},
        },
    )
    failed = [n for n, c in codes.items() if c != 0]
    if failed:
        raise SystemExit(f"training failed: {failed} (see logs.tar)")

    results: dict = {"date": str(date.today()), "args": vars(args), "host": _host(), "models": {}}
    for name in args.models:  # checkpoints first: they come back even if scoring fails
        _tar(out, f"{name}.tar", {name: half_checkpoint(work / name / "last", work / "export" / name)})  # base: 10 MB
    scores = evaluate_all({name: work / name / "last" for name in args.models}, args, work)
    for name in args.models:
        steps = json.loads((work / name / "last" / "metrics.json").read_text()).get("step")
        results["models"][name] = {"steps": steps, **scores[name]}
    stamps["score_s"] = time.perf_counter() - t0 - sum(stamps.values())
    results["seconds"] = dict(stamps, total_s=time.perf_counter() - t0)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "results.md").write_text(table(results))
    print(table(results))
    return results


def table(results: dict) -> str:
    """The Markdown table of a ``results.json``."""
    lines = [
        "| model | steps | F1@0.5 | AP50 | AP75 | mAP | AFNR | F1@0.5, flips + probability | train fields F1@0.5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        t, a = r["test"], r["test_flips_probability"]
        fit = f"{r['train_fields']['f1_50']:.3f}" if "train_fields" in r else ""
        lines.append(
            f"| {name} | {r['steps']} | {t['f1_50']:.3f} | {t['ap50']:.3f} | {t['ap75']:.3f} | {t['map']:.3f} "
            f"| {t['afnr']:.3f} | {a['f1_50']:.3f} | {fit} |"
        )
    return "\n".join(lines) + "\n"


def _host() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write carry/bbbc018.tar.xz from the shared data")
    p.add_argument("--out", default="carry")
    p.add_argument("--data-root", default=os.environ.get("LOCISEG_DATA", str(ROOT.parent / "shared" / "data")))
    r = sub.add_parser("run", help="annotate, train both models in parallel, score them")
    r.add_argument("--data", required=True, help="the pack's bbbc018.tar.xz")
    r.add_argument("--out", required=True, help="results and checkpoints ($OUT on the device machine)")
    r.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    r.add_argument("--minutes", type=float, default=5.0, help="training wall-clock budget per model")
    r.add_argument("--steps", type=int, default=20000, help="step cap (the cosine schedule's length)")
    r.add_argument("--preset", default="base", choices=["tiny", "base", "small"])
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument(
        "--models",
        default="zero_label,supervised",
        help=f"comma-separated, trained side by side on the one GPU; of {', '.join(MODELS)}",
    )
    r.add_argument("--threads", type=int, default=2, help="torch CPU threads per training process")
    r.add_argument("--workers", type=int, default=6, help="batch-building processes per training (optim.workers)")
    r.add_argument("--device", default="auto")
    r.add_argument("--set", action="append", default=[], help="extra config override for both models (repeatable)")
    r.add_argument("--test-limit", type=int, default=0, help="score only the first N test fields (smoke runs)")
    r.add_argument("--fit", action="store_true", help="also score the train fields (how well each model fits)")
    args = ap.parse_args()
    if args.command == "run":
        args.models = [m for m in args.models.split(",") if m]
        unknown = sorted(set(args.models) - set(MODELS))
        if unknown or not args.models:
            ap.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if args.command == "pack":
        target = pack(Path(args.data_root), Path(args.out))
        print(f"{target} ({target.stat().st_size / 2**20:.1f} MiB)")
    else:
        run(args)


if __name__ == "__main__":
    main()

"""Training speed in steps per CPU-second of ``lociseg.train.train``, option by option.

Run:  python benchmarks/bench_train_speed.py [--steps 30] [--warmup 5] [--rounds 3]
          [--variants baseline,channels_last,compile,workers1,cpu_bf16] [--profile]

Each variant is one ``train()`` call of the generalist recipe
(``configs/cells_generalist.yaml``) on real data (``bbbc018@train`` and
``aitslab@train``, channels cell + nucleus, loaded once), from the same seed,
with no validation and no checkpoints between steps. The clock is the
process's CPU time (``time.process_time``: every thread of this process),
not wall time, which on a shared machine measures the other jobs; a step is
the CPU time between two ``on_step`` calls (batch making, forward, backward,
optimiser and the loop's own bookkeeping). The first ``--warmup`` steps are
left out (``torch.compile`` compiles in them, in this process:
``TORCHINDUCTOR_COMPILE_THREADS=1``; reported apart). With ``optim.workers`` the batches are built in a
child process: its CPU time (read when it has ended) is added pro rata.
Variants run in turn, round after round (A B A B ...), so a change of load
hits all of them; the table gives each variant's median steps per CPU-second
over rounds, its min and max, the ratio of medians to ``baseline`` and the
ratio to the baseline of the same round.

Equal output: the per-step losses of every variant's first round against
the baseline's (same seed, same batches), as the largest relative difference.

``--profile`` adds where a baseline step's CPU goes: batch making, loss
forward, backward, optimiser (a hand-written copy of the step on prebuilt
batches), and the largest operators from ``torch.profiler``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # compile in this process, so its CPU time is counted

import numpy as np
import torch

from lociseg.train import train
from lociseg.train.config import ExperimentConfig
from lociseg.train.data import load_samples_for, make_batch, prepare
from lociseg.train.speed import cpu_has_bf16

ROOT = Path(__file__).resolve().parents[1]

#: Variant name -> config overrides (on top of the recipe).
#: ``baseline`` is the loop before the speed options (every one off), whatever the defaults are now.
BASELINE = {"optim.channels_last": False, "optim.compile": False, "optim.cpu_bf16": False, "optim.threads": 1}
VARIANTS: dict[str, dict] = {
    "baseline": BASELINE,
    "channels_last": {**BASELINE, "optim.channels_last": True},
    "compile": {**BASELINE, "optim.compile": True},
    "channels_last+compile": {**BASELINE, "optim.channels_last": True, "optim.compile": True},
    "threads2": {**BASELINE, "optim.threads": 2},
    "workers1": {**BASELINE, "optim.workers": 1},
    "channels_last+workers1": {**BASELINE, "optim.channels_last": True, "optim.workers": 1},
    "cpu_bf16": {**BASELINE, "optim.cpu_bf16": True},
}


def base_config(path: Path, specs: list[str], steps: int, crop: int) -> ExperimentConfig:
    """The recipe with a fixed number of steps and nothing but training in them."""
    cfg = ExperimentConfig.from_yaml(path)
    over = {
        "data.train": specs,
        "data.val": [],
        "optim.steps": steps,
        "optim.budget_minutes": 0,
        "optim.checkpoint_every": 0,
        "optim.checkpoint_minutes": 0,
        "init": "",
    }
    if crop:
        over["data.crop_size"] = crop
    return cfg.override(over)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_variant(cfg: ExperimentConfig, samples: list, warmup: int) -> dict:
    """One ``train()`` call: CPU seconds per step after the warm-up, warm-up CPU, per-step losses."""
    marks: list[float] = []
    losses: list[float] = []

    def on_step(info: dict) -> None:
        marks.append(time.process_time())
        losses.append(float(info["loss"]))

    if cfg.optim.compile:
        torch._dynamo.reset()  # each model compiles afresh: the compile cost is counted every round
    children = _children_cpu()
    with tempfile.TemporaryDirectory() as out:
        t_start = time.process_time()
        train(cfg, out, train_samples=copy.deepcopy(samples), progress=False, on_step=on_step)
    gc.collect()  # ends batch workers still held by the finished loop, so their CPU time is counted
    children = _children_cpu() - children
    steps = len(marks)
    timed = steps - warmup
    step_cpu = (marks[-1] - marks[warmup - 1]) / timed
    workers = 0.0
    if cfg.optim.workers > 0:  # the worker built every step's batch: charge the timed steps their share
        workers, children = children, 0.0
        step_cpu += workers / steps
    return {
        "steps_per_cpu_s": 1.0 / step_cpu,
        "step_cpu": step_cpu,
        "first_steps_cpu": marks[warmup - 1] - t_start,  # prepare + warm-up steps (+ compilation)
        "children_cpu": children,  # compile workers
        "workers_cpu": workers,  # batch workers (already in step_cpu)
        "losses": losses,
    }


def profile_steps(cfg: ExperimentConfig, samples: list, n: int) -> dict:
    """CPU shares of a baseline step (batch, loss forward, backward, optimiser) and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    from lociseg.models.registry import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.optim.threads))
    items, _ = prepare(copy.deepcopy(samples), cfg, weak=False)
    torch.manual_seed(cfg.optim.seed)
    model = build_model(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr * 0.1)
    dev = torch.device("cpu")
    parts = {"batch": 0.0, "forward (loss)": 0.0, "backward": 0.0, "optimiser": 0.0}

    def step(k: int, timed: bool) -> None:
        t0 = time.process_time()
        batch = make_batch(items, cfg, k, dev, weak=False)
        t1 = time.process_time()
        loss, _ = model.training_loss(batch, k)
        t2 = time.process_time()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.process_time()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        t4 = time.process_time()
        if timed:
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key] += dt

    for k in range(2):
        step(k, False)
    for k in range(2, 2 + n):
        step(k, True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(2 + n, 2 + n + max(2, n // 3)):
            step(k, False)
    torch.set_num_threads(threads)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {
        "per_step": {k: v / n for k, v in parts.items()},
        "ops": [(e.key, e.self_cpu_time_total / total) for e in top],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "cells_generalist.yaml"))
    ap.add_argument("--specs", default="bbbc018@train,aitslab@train")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--crop", type=int, default=0, help="data.crop_size (0: the recipe's)")
    ap.add_argument("--variants", default="baseline,channels_last,compile,workers1,cpu_bf16", help=", ".join(VARIANTS))
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    skipped = {}
    if "cpu_bf16" in names and not cpu_has_bf16():
        names.remove("cpu_bf16")
        skipped["cpu_bf16"] = "not available on this CPU (no avx512_bf16 / amx_bf16 in /proc/cpuinfo)"
    if "baseline" not in names:
        names.insert(0, "baseline")

    specs = args.specs.split(",")
    cfg = base_config(Path(args.config), specs, args.warmup + args.steps, args.crop)
    t = time.process_time()
    samples = load_samples_for(cfg, specs)
    print(f"loaded {len(samples)} images of {specs} in {time.process_time() - t:.1f} CPU s", flush=True)

    results: dict[str, list[dict]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for name in names:
            res = run_variant(cfg.override(VARIANTS[name]), samples, args.warmup)
            results[name].append(res)
            load.append(os.getloadavg()[0])
            print(
                f"round {r + 1} {name:24s} {res['steps_per_cpu_s']:.3f} steps/CPU-s "
                f"(first {args.warmup} steps + prepare {res['first_steps_cpu']:.1f} CPU s, "
                f"compile children {res['children_cpu']:.1f} CPU s, batch workers {res['workers_cpu']:.1f} CPU s)",
                flush=True,
            )

    base = float(np.median([x["steps_per_cpu_s"] for x in results["baseline"]]))
    ref = np.array(results["baseline"][0]["losses"])
    print()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, load average {min(load):.1f}-{max(load):.1f}"
    )
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"crop {cfg.data.crop_size}, batch {cfg.optim.batch_size}, {args.warmup} + {args.steps} steps, {args.rounds} rounds"
    )
    print()
    print(
        "| variant | steps / CPU-s (median) | min - max | vs baseline | ratio per round "
        "| first steps CPU s | loss: max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        rates = [x["steps_per_cpu_s"] for x in results[name]]
        first = np.median([x["first_steps_cpu"] + x["children_cpu"] for x in results[name]])
        loss = np.array(results[name][0]["losses"])
        diff = float(np.max(np.abs(loss - ref) / np.maximum(np.abs(ref), 1e-12)))
        paired = " ".join(
            f"{x['steps_per_cpu_s'] / b['steps_per_cpu_s']:.2f}" for x, b in zip(results[name], results["baseline"])
        )
        print(
            f"| {name} | {np.median(rates):.3f} | {min(rates):.3f} - {max(rates):.3f} | "
            f"{np.median(rates) / base:.2f}x | {paired} | {first:.1f} | {diff:.1e} |"
        )
    for name, why in skipped.items():
        print(f"| {name} | {why} | | | | | |")

    if args.profile:
        prof = profile_steps(cfg, samples, args.steps)
        total = sum(prof["per_step"].values())
        print()
        print(
            f"baseline step, {total:.3f} CPU s: "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in prof["per_step"].items())
        )
        print("top operators (self CPU): " + ", ".join(f"{k} {v:.0%}" for k, v in prof["ops"]))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

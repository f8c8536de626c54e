"""The training loop shared by every model type."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from ..device import choose_device
from ..errors import ConfigError, InputError
from ..metrics import aggregate, evaluate_image
from ..models.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from ..models.registry import build_model
from ..predict.paste import paste_instances
from .checkpoint import init_weights, load_training_state
from .config import ExperimentConfig
from .data import (
    Prepared,
    as_samples,
    iterate_batches,
    load_samples_for,
    machine_labels,
    prepare,
    weak_from_own_labels,
)
from .diagnostics import CollapseMonitor
from .distributed import any_rank, barrier, loss_fn, mean, ranks_from_env, setup, teardown
from .speed import speed_up_model, to_memory_format, train_autocast

log = logging.getLogger("lociseg.train")


def lr_factor(step: int, warmup: int, total: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``total`` steps.

    ``time_fraction`` (elapsed / wall-clock budget) advances the decay when
    the budget, not the step count, will end the run, so a budget-limited
    run still anneals.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = max((step - warmup) / max(1, total - warmup), time_fraction)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def validate(model, items: list[Prepared], device: torch.device) -> dict[str, float]:
    """F1@0.5 and AP50 (summed over images) of the model on prepared labelled images."""
    results = []
    for it in items:
        if it.labels is None:
            continue
        inst = model.predict_instances(torch.from_numpy(it.image)[None].to(device))
        pred, kept = paste_instances(inst, it.labels.shape)
        scores = np.asarray(inst.scores)[kept] if len(kept) else np.zeros(0, np.float32)
        results.append(evaluate_image(it.labels, pred, scores))
    if not results:
        return {}
    agg = aggregate(results, by="sum")
    return {
        "f1_50": float(agg["f1_50"]),
        "ap50": float(agg["ap50"]),
        "map": float(agg["map"]),
        "dsb_ap_50": float(agg["dsb_ap_50"]),
        "n_images": len(results),
    }


def train(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    train_samples: Any = None,
    val_samples: Any = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    on_step: Callable[[dict[str, Any]], bool | None] | None = None,
) -> dict[str, Any]:
    """Train a model; checkpoints go to ``out_dir/best`` and ``out_dir/last``.

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path
        Run folder: ``best/``, ``last/`` (model.safetensors, config.yaml,
        metrics.json; ``last`` also the training state), ``log.csv``,
        ``config.yaml``.
    train_samples, val_samples : list of Sample, or (images, labels), optional
        In-memory data instead of the ``data.train`` / ``data.val`` specs:
        :class:`lociseg.data.Sample` objects, or a sequence of (H, W) or
        (C, H, W) images and one of label images (channels already chosen;
        ``data.channels`` is not applied). Weak modes need samples with
        ``points`` and ``foreground``, or ``data.annotations: [from-labels]``
        to derive them from the labels. The saved config then has empty
        ``data.train`` / ``data.val``.
    device : {"auto", "cpu", "cuda", "mps"}
    resume : bool
        Continue from ``out_dir/last`` exactly where it stopped (same
        batches, learning rate and random state as an uninterrupted run;
        ``log.csv`` is cut back to that step).
    overwrite : bool
        Start afresh in a folder that already holds a run (its checkpoints and
        log are deleted); without it such a folder is refused, so a finished
        run is never silently mixed with a new one.
    progress : bool
        Show a progress bar.
    stop_at : int, optional
        Stop after this step (as an interruption would); the schedule still
        runs to ``optim.steps``. Used to test exact resume.
    on_step : callable, optional
        Called after each step with ``step`` (steps done), ``steps``
        (``optim.steps``), ``loss``, ``seconds`` (trained so far) and
        ``budget_seconds`` (0: no time budget), e.g. for a progress bar in
        a GUI; returning True stops the run as a signal would
        (``interrupted`` is then ``"cancelled"``). Signals reach only the
        main thread, so this is how a run in a worker thread is stopped.

    Returns
    -------
    dict
        ``step``, ``best`` validation metrics, ``last`` metrics, ``diameter``,
        ``seconds``, and ``interrupted``: the name of the signal (SIGTERM,
        SIGINT) that stopped the run early, else None.

    Notes
    -----
    ``last/`` is replaced atomically every ``optim.checkpoint_every`` steps,
    every ``optim.checkpoint_minutes``, at the end, after an error, and when
    SIGTERM or SIGINT arrives (the signal only sets a flag; the loop saves
    after the step in progress and returns). A second signal interrupts at
    once (KeyboardInterrupt), keeping the previous checkpoint. A ``kill -9``
    loses the steps since the last checkpoint.
    """
    opt_cfg = config.optim
    threads_before = torch.get_num_threads()
    if opt_cfg.threads > 0:
        torch.set_num_threads(opt_cfg.threads)
    try:
        with _StopSignals() as stop:
            return _train(
                config, out_dir, train_samples, val_samples, device, resume, overwrite, progress, stop_at, stop, on_step
            )
    finally:
        torch.set_num_threads(threads_before)  # leave the caller's process as it was


class _StopSignals:
    """SIGTERM / SIGINT set ``signal`` (the loop then saves and stops); a second one raises KeyboardInterrupt.

    Handlers are only installed in the main thread (Python allows no other)
    and the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: a folder with a run needs --resume or --overwrite; resuming needs a checkpoint."""
    has_last = recover_checkpoint(out / "last")
    previous = [out / n for n in ("best", "last", "log.csv") if (out / n).exists()]
    if resume:
        if has_last:
            return
        if previous:
            raise InputError(
                "nothing to resume: the run here stopped before its first checkpoint (last/); "
                "start again with --overwrite or choose another -o",
                path=out,
            )
        raise InputError("nothing to resume (no last/ checkpoint)", path=out)
    if not previous:
        return
    if not overwrite:
        if has_last:
            raise InputError(
                "holds a training run already; use --resume to continue it, --overwrite to start again, or another -o",
                path=out,
            )
        raise InputError(
            "holds a training run that stopped before its first checkpoint (nothing to resume); "
            "use --overwrite to start again or another -o",
            path=out,
        )
    for p in previous:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _load_data(
    config: ExperimentConfig, train_samples: Any, val_samples: Any, weak: bool, machine: bool
) -> tuple[ExperimentConfig, list, list]:
    """Training and validation samples, from the config's specs or from memory; the config to save."""
    if train_samples is None:
        if weak and not config.data.annotations:
            raise ConfigError("weak modes need data.annotations (lociseg annotate output folders, or 'from-labels')")
        train = load_samples_for(
            config, config.data.train, config.data.annotations if weak or machine else None, machine=machine
        )
    else:
        train = as_samples(train_samples, "train_samples")
        if weak and any(s.points is None for s in train):
            if config.data.annotations != ["from-labels"]:
                raise ConfigError(
                    "train_samples: weak modes need samples with points and foreground, "
                    "or data.annotations: [from-labels] to derive them from the labels"
                )
            train = weak_from_own_labels(train)
        if machine:
            train = machine_labels(train)
        config = config.override({"data.train": [], "data.annotations": []})
    if val_samples is not None:
        val = as_samples(val_samples, "val_samples")
        config = config.override({"data.val": []})
    else:
        val = load_samples_for(config, config.data.val) if config.data.val else []
    return config, train, val


def _train(
    config: ExperimentConfig,
    out_dir: str | Path,
    train_samples: Any,
    val_samples: Any,
    device: str,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_at: int | None,
    stop: _StopSignals,
    on_step: Callable[[dict[str, Any]], bool | None] | None = None,
) -> dict[str, Any]:
    from tqdm import tqdm

    out = Path(out_dir)
    opt_cfg = config.optim
    ranks = ranks_from_env()
    dev = setup(ranks, choose_device(device), opt_cfg.batch_size)
    if ranks.main:
        _check_run_folder(out, resume, overwrite)
    barrier(ranks)  # the others start once rank 0 has checked (and with --overwrite cleared) the folder
    torch.manual_seed(opt_cfg.seed)
    weak = config.weak
    machine = config.data.label_source == "machine"
    config, train_samples, val_samples = _load_data(config, train_samples, val_samples, weak, machine)
    if not train_samples:
        raise ConfigError("data.train: no training images")
    if not weak and any(s.labels is None for s in train_samples):
        raise ConfigError(
            "supervised training needs labels for every training image (or set lacss.mode to a weak mode)"
        )
    train_items, diameter = prepare(train_samples, config, weak=weak)
    # Validation images are rescaled by the training factor's rule: their own GT diameter
    # would leak labels in weak runs, so weak runs reuse the training diameter.
    val_items: list[Prepared] = []
    if val_samples:
        val_items, _ = prepare(val_samples, config, weak=False, diameter=diameter if weak or machine else None)
    log.info(
        "training on %d images (%d val), diameter %.1f px -> scale %.3f",
        len(train_items),
        len(val_items),
        diameter,
        train_items[0].scale,
    )

    model = build_model(config.model)
    if config.init and not resume:
        init_weights(model, config)
        log.info("starting from the weights of %s", config.init)
    model = speed_up_model(model.to(dev), opt_cfg)
    step_loss = loss_fn(model, ranks, dev)  # gradients averaged across ranks in a distributed run
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
    budget_s = 60 * opt_cfg.budget_minutes
    clock = {"t0": time.perf_counter(), "before": 0.0}  # seconds trained in earlier (resumed) parts

    def elapsed() -> float:
        return clock["before"] + time.perf_counter() - clock["t0"]

    def factor(s: int) -> float:
        return lr_factor(s, opt_cfg.warmup_steps, opt_cfg.steps, elapsed() / budget_s if budget_s > 0 else 0.0)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    out.mkdir(parents=True, exist_ok=True)
    start, best_score, best_metrics = 0, -1.0, {}
    if resume:
        state_model = load_checkpoint(out / "last", "cpu")
        model.load_state_dict(state_model.state_dict())
        meta = load_training_state(out / "last", optimizer, scheduler)
        start = int(meta["step"])
        clock["before"] = float(meta.get("elapsed", 0.0))
        best_score = float(meta.get("best_score", -1.0))
        best_metrics = meta.get("best_metrics", {})
        log.info("resuming at step %d", start)
    if ranks.main:
        config.to_yaml(out / "config.yaml")

    csv_log = _CsvLog(out / "log.csv", keep_until=start if resume else None) if ranks.main else None
    clock["t0"] = t0 = time.perf_counter()
    last_metrics: dict[str, float] = {}
    end = opt_cfg.steps if stop_at is None else min(stop_at, opt_cfg.steps)
    checks = model.collapse_checks()
    monitor = None
    if checks is not None:
        monitor = CollapseMonitor(**checks)

    def save_last(at: int) -> None:
        if not ranks.main:
            return  # one checkpoint writer
        save_checkpoint(
            out / "last",
            model,
            config,
            dict(last_metrics, step=at, diameter=diameter),
            optimizer=optimizer,
            scheduler=scheduler,
            step=at,
            extra_state={"best_score": best_score, "best_metrics": best_metrics, "elapsed": elapsed()},
        )

    bar = tqdm(
        total=opt_cfg.steps, initial=start, disable=not (progress and ranks.main) or None, desc="train", unit="step"
    )
    step = saved = start
    torn = False
    saved_at = time.perf_counter()
    try:
        model.train()
        batches = iterate_batches(
            train_items, config, start, end, dev, weak=weak, workers=opt_cfg.workers, shard=ranks.shard
        )
        for step, batch in zip(range(start, end), batches):
            with train_autocast(dev, opt_cfg):
                loss, parts = step_loss(to_memory_format(batch, opt_cfg), step)
            loss_value = mean(float(loss.detach()), ranks, dev)
            if not math.isfinite(loss_value):
                raise RuntimeError(f"step {step}: loss is {loss_value}; lower optim.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt_cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            done = step = step + 1  # from here on a checkpoint of this point holds `done` steps
            bar.update(1)
            if budget_s > 0:  # the budget, not the step count, ends the run: show the time left
                bar.set_postfix(loss=f"{loss_value:.3f}", left=f"{max(0.0, budget_s - elapsed()) / 60:.1f} min")
            else:
                bar.set_postfix(loss=f"{loss_value:.3f}")
            row: dict[str, Any] | None = None
            base = {"step": done, "seconds": round(elapsed(), 2), "lr": scheduler.get_last_lr()[0], "loss": loss_value}
            over_budget = any_rank(budget_s > 0 and elapsed() > budget_s, ranks, dev)
            if on_step is not None and on_step(
                {
                    "step": done,
                    "steps": opt_cfg.steps,
                    "loss": loss_value,
                    "seconds": elapsed(),
                    "budget_seconds": budget_s,
                }
            ):
                stop.signal = stop.signal or "cancelled"
            stopping = stop.signal  # read once: a signal arriving later stops after the next step
            if any_rank(stopping is not None, ranks, dev):  # every rank stops at the same step
                stopping = stopping or "SIGTERM"
            final = done == end or over_budget or stopping is not None
            if done % opt_cfg.log_every == 0 or final:
                row = {**base, **parts}
                diag = model.diagnostics(batch, done)
                row.update({f"diag_{k}": v for k, v in diag.items()})
                if monitor is not None and diag:
                    monitor.update(diag, step=done)
            if ranks.main and val_items and (done % opt_cfg.val_every == 0 or done == opt_cfg.steps):
                last_metrics = validate(model, val_items, dev)
                model.train()
                row = row or base
                row.update({f"val_{k}": v for k, v in last_metrics.items()})
                score = last_metrics.get("f1_50", -1.0)
                if not opt_cfg.select_best or score > best_score:
                    best_score, best_metrics = score, dict(last_metrics, step=done)
                    save_checkpoint(out / "best", model, config, dict(best_metrics, diameter=diameter))
                bar.write(
                    f"step {done}: val F1@0.5 {last_metrics.get('f1_50', float('nan')):.3f} "
                    f"AP50 {last_metrics.get('ap50', float('nan')):.3f}"
                )
            if row is not None and csv_log is not None:
                csv_log.write(row)
            if stopping is not None:
                log.warning("%s: stopping at step %d; continue with --resume", stopping, done)
                break
            if over_budget:
                log.warning("stopping at step %d: wall-clock budget of %.1f min reached", done, opt_cfg.budget_minutes)
                break
            if done < end and (
                (opt_cfg.checkpoint_every > 0 and done % opt_cfg.checkpoint_every == 0)
                or (
                    opt_cfg.checkpoint_minutes > 0 and time.perf_counter() - saved_at >= 60 * opt_cfg.checkpoint_minutes
                )
            ):
                save_last(done)
                saved, saved_at = done, time.perf_counter()
    except KeyboardInterrupt:
        torn = True  # a second signal may have struck mid-update: keep the last checkpoint as it is
        raise
    finally:
        bar.close()
        # Leave a resumable checkpoint, also after an error.
        if not torn and (step != saved or not (out / "last").is_dir()):
            save_last(step)
    if ranks.main and not (out / "best").exists():
        save_checkpoint(out / "best", model, config, dict(last_metrics, step=step, diameter=diameter))
    barrier(ranks)  # the checkpoints are on disk before any rank returns
    teardown(ranks)
    return {
        "step": step,
        "best": best_metrics,
        "last": last_metrics,
        "diameter": diameter,
        "seconds": time.perf_counter() - t0,
        "interrupted": stop.signal,
    }


class _CsvLog:
    """``log.csv`` with one row per logged step; columns may appear late (weak terms), so the
    file is rewritten when the header grows and appended to otherwise. A resumed run keeps the
    rows up to its checkpoint's step (later ones were logged after the checkpoint and are redone).
    """

    def __init__(self, path: Path, keep_until: int | None) -> None:
        self.path = path
        self.rows: list[dict] = []
        self.fields: list[str] = []
        if keep_until is not None and path.exists():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r["step"]) <= keep_until]
        self._rewrite()

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields, restval="")
            if self.fields:
                w.writeheader()
            w.writerows(self.rows)

    def write(self, row: dict) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new or not self.fields:
            self.fields += new
            self._rewrite()
            return
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, restval="").writerow(row)

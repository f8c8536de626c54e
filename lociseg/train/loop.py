"""The training loop shared by every model type."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import choose_device
from ..errors import ConfigError
from ..metrics import aggregate, evaluate_image
from ..models.checkpoint import load_checkpoint, save_checkpoint
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
from .distributed import Ranks, any_rank, barrier, loss_fn, mean, ranks_from_env, setup, teardown
from .run_control import CsvLog, StopSignals, check_run_folder
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
        with StopSignals() as stop:
            return _train(
                config,
                out_dir,
                train_samples=train_samples,
                val_samples=val_samples,
                device=device,
                resume=resume,
                overwrite=overwrite,
                progress=progress,
                stop_at=stop_at,
                stop=stop,
                on_step=on_step,
            )
    finally:
        torch.set_num_threads(threads_before)  # leave the caller's process as it was


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


@dataclass
class _Data:
    """Prepared training and validation images and the training diameter they were rescaled by."""

    train: list[Prepared]
    val: list[Prepared]
    diameter: float


def _prepare_data(config: ExperimentConfig, train_samples: Any, val_samples: Any) -> tuple[ExperimentConfig, _Data]:
    """Load, check and rescale the data; the config to save (in-memory data leaves its specs empty)."""
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
    return config, _Data(train_items, val_items, diameter)


@dataclass
class _Clock:
    """Seconds trained: ``before`` (earlier parts of a resumed run) plus the time since ``t0``.

    The CPU seconds of this process (all its threads) are kept the same way, so a campaign of
    resumed stretches can state its CPU-hours from the log.
    """

    budget: float  # wall-clock budget in seconds; 0: none
    before: float = 0.0
    t0: float = field(default_factory=time.perf_counter)
    cpu_before: float = 0.0
    cpu0: float = field(default_factory=time.process_time)

    def start(self) -> None:
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu0

    def fraction(self) -> float:
        """Share of the budget spent (0 without a budget): advances the learning-rate decay."""
        return self.elapsed() / self.budget if self.budget > 0 else 0.0

    def over(self) -> bool:
        return self.budget > 0 and self.elapsed() > self.budget


@dataclass
class _Best:
    """The best validation so far (score -1: none yet)."""

    score: float = -1.0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """The state of one training run and its named steps (one optimiser step, validate, checkpoint, stop)."""

    config: ExperimentConfig
    out: Path
    ranks: Ranks
    dev: torch.device
    data: _Data
    model: Any
    step_loss: Any  # (batch, step) -> (loss, parts); a DDP wrapper in a distributed run
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    clock: _Clock
    best: _Best
    start: int
    end: int
    stop: StopSignals
    on_step: Callable[[dict[str, Any]], bool | None] | None
    csv_log: CsvLog | None = None
    bar: Any = None
    monitor: CollapseMonitor | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    done: int = 0  # steps done: a checkpoint taken now holds this many
    saved: int = 0
    saved_at: float = field(default_factory=time.perf_counter)

    @classmethod
    def create(
        cls, config: ExperimentConfig, out: Path, ranks: Ranks, dev: torch.device, data: _Data, resume: bool, **kw: Any
    ) -> _Run:
        """The model (initial weights, or those of ``out/last`` on resume), optimiser and schedule."""
        opt_cfg = config.optim
        model = build_model(config.model)
        if config.init and not resume:
            init_weights(model, config)
            log.info("starting from the weights of %s", config.init)
        model = speed_up_model(model.to(dev), opt_cfg)
        step_loss = loss_fn(model, ranks, dev)  # gradients averaged across ranks in a distributed run
        optimizer = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
        clock = _Clock(budget=60 * opt_cfg.budget_minutes)

        def factor(s: int) -> float:
            return lr_factor(s, opt_cfg.warmup_steps, opt_cfg.steps, clock.fraction())

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        out.mkdir(parents=True, exist_ok=True)
        run = cls(config, out, ranks, dev, data, model, step_loss, optimizer, schedule, clock, _Best(), start=0, **kw)
        if resume:
            run.load_last()
        return run

    def load_last(self) -> None:
        """Continue from ``out/last``: weights, optimiser, schedule, clock and best validation."""
        self.model.load_state_dict(load_checkpoint(self.out / "last", "cpu").state_dict())
        meta = load_training_state(self.out / "last", self.optimizer, self.schedule)
        self.start = int(meta["step"])
        self.clock.before = float(meta.get("elapsed", 0.0))
        self.clock.cpu_before = float(meta.get("cpu_elapsed", 0.0))
        self.best = _Best(float(meta.get("best_score", -1.0)), meta.get("best_metrics", {}))
        log.info("resuming at step %d", self.start)

    def open(self, resume: bool, progress: bool) -> None:
        """Save the config, open the log, the collapse monitor and the progress bar; start the clock."""
        from tqdm import tqdm

        if self.ranks.main:
            self.config.to_yaml(self.out / "config.yaml")
            self.csv_log = CsvLog(self.out / "log.csv", keep_until=self.start if resume else None)
        self.clock.start()
        checks = self.model.collapse_checks()
        self.monitor = CollapseMonitor(**checks) if checks is not None else None
        self.bar = tqdm(
            total=self.config.optim.steps,
            initial=self.start,
            disable=not (progress and self.ranks.main) or None,
            desc="train",
            unit="step",
        )
        self.done = self.saved = self.start
        self.saved_at = time.perf_counter()

    def run(self) -> None:
        """Train from ``start`` to ``end`` (or a stop); leave a resumable ``last/``, also after an error."""
        torn = False
        try:
            self.model.train()
            opt_cfg = self.config.optim
            batches = iterate_batches(
                self.data.train,
                self.config,
                self.start,
                self.end,
                self.dev,
                weak=self.config.weak,
                workers=opt_cfg.workers,
                shard=self.ranks.shard,
            )
            for _, batch in zip(range(self.start, self.end), batches):
                loss_value, parts = self.step(batch)
                if self.after_step(batch, loss_value, parts):
                    break
        except KeyboardInterrupt:
            torn = True  # a second signal may have struck mid-update: keep the last checkpoint as it is
            raise
        finally:
            self.bar.close()
            if not torn and (self.done != self.saved or not (self.out / "last").is_dir()):
                self.save_last()

    def step(self, batch: Any) -> tuple[float, dict[str, float]]:
        """One optimiser step; the loss (mean over ranks) and its parts."""
        opt_cfg = self.config.optim
        with train_autocast(self.dev, opt_cfg):
            loss, parts = self.step_loss(to_memory_format(batch, opt_cfg), self.done)
        loss_value = mean(float(loss.detach()), self.ranks, self.dev)
        if not math.isfinite(loss_value):
            raise RuntimeError(f"step {self.done}: loss is {loss_value}; lower optim.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt_cfg.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        self.done += 1
        self.bar.update(1)
        if self.clock.budget > 0:  # the budget, not the step count, ends the run: show the time left
            left = max(0.0, self.clock.budget - self.clock.elapsed()) / 60
            self.bar.set_postfix(loss=f"{loss_value:.3f}", left=f"{left:.1f} min")
        else:
            self.bar.set_postfix(loss=f"{loss_value:.3f}")
        return loss_value, parts

    def after_step(self, batch: Any, loss_value: float, parts: dict[str, float]) -> bool:
        """Log, validate and checkpoint after a step; True when the run stops here."""
        done, opt_cfg = self.done, self.config.optim
        base = {
            "step": done,
            "seconds": round(self.clock.elapsed(), 2),
            "cpu_seconds": round(self.clock.cpu(), 2),
            "lr": self.schedule.get_last_lr()[0],
            "loss": loss_value,
        }
        over_budget = any_rank(self.clock.over(), self.ranks, self.dev)
        stopping = self.should_stop(loss_value)
        row = None
        if done % opt_cfg.log_every == 0 or done == self.end or over_budget or stopping is not None:
            row = self.diagnose(batch, base, parts)
        if self.ranks.main and self.data.val and (done % opt_cfg.val_every == 0 or done == opt_cfg.steps):
            row = self.validate(row or base)
        if row is not None and self.csv_log is not None:
            self.csv_log.write(row)
        if stopping is not None:
            log.warning("%s: stopping at step %d; continue with --resume", stopping, done)
            return True
        if over_budget:
            log.info("stopping at step %d: wall-clock budget of %.1f min reached", done, opt_cfg.budget_minutes)
            return True
        self.checkpoint()
        return False

    def should_stop(self, loss_value: float) -> str | None:
        """The signal (or ``"cancelled"`` from ``on_step``) that stops the run here, the same on every rank."""
        progress = {
            "step": self.done,
            "steps": self.config.optim.steps,
            "loss": loss_value,
            "seconds": self.clock.elapsed(),
            "budget_seconds": self.clock.budget,
        }
        if self.on_step is not None and self.on_step(progress):
            self.stop.signal = self.stop.signal or "cancelled"
        stopping = self.stop.signal  # read once: a signal arriving later stops after the next step
        if any_rank(stopping is not None, self.ranks, self.dev):  # every rank stops at the same step
            stopping = stopping or "SIGTERM"
        return stopping

    def diagnose(self, batch: Any, base: dict[str, Any], parts: dict[str, float]) -> dict[str, Any]:
        """The log row of this step: loss parts and the model's diagnostics (fed to the collapse monitor)."""
        row = {**base, **parts}
        diag = self.model.diagnostics(batch, self.done)
        row.update({f"diag_{k}": v for k, v in diag.items()})
        if self.monitor is not None and diag:
            self.monitor.update(diag, step=self.done)
        return row

    def validate(self, row: dict[str, Any]) -> dict[str, Any]:
        """Validate, keep ``best/`` up to date, and add the metrics to the log row."""
        self.last_metrics = validate(self.model, self.data.val, self.dev)
        self.model.train()
        row.update({f"val_{k}": v for k, v in self.last_metrics.items()})
        score = self.last_metrics.get("f1_50", -1.0)
        if not self.config.optim.select_best or score > self.best.score:
            self.best = _Best(score, dict(self.last_metrics, step=self.done))
            save_checkpoint(
                self.out / "best", self.model, self.config, dict(self.best.metrics, diameter=self.data.diameter)
            )
        self.bar.write(
            f"step {self.done}: val F1@0.5 {self.last_metrics.get('f1_50', float('nan')):.3f} "
            f"AP50 {self.last_metrics.get('ap50', float('nan')):.3f}"
        )
        return row

    def checkpoint(self) -> None:
        """Save ``last/`` every ``checkpoint_every`` steps or ``checkpoint_minutes`` (the end saves in ``run``)."""
        opt_cfg = self.config.optim
        every = opt_cfg.checkpoint_every > 0 and self.done % opt_cfg.checkpoint_every == 0
        minutes = opt_cfg.checkpoint_minutes
        due = minutes > 0 and time.perf_counter() - self.saved_at >= 60 * minutes
        if self.done < self.end and (every or due):
            self.save_last()
            self.saved, self.saved_at = self.done, time.perf_counter()

    def save_last(self) -> None:
        """Replace ``last/`` with this point of the run: weights, optimiser, schedule, clock, best."""
        if not self.ranks.main:
            return  # one checkpoint writer
        save_checkpoint(
            self.out / "last",
            self.model,
            self.config,
            dict(self.last_metrics, step=self.done, diameter=self.data.diameter),
            optimizer=self.optimizer,
            scheduler=self.schedule,
            step=self.done,
            extra_state={
                "best_score": self.best.score,
                "best_metrics": self.best.metrics,
                "elapsed": self.clock.elapsed(),
                "cpu_elapsed": self.clock.cpu(),
            },
        )

    def finish(self) -> dict[str, Any]:
        """Make sure ``best/`` exists, wait for every rank, and report the run."""
        if self.ranks.main and not (self.out / "best").exists():
            save_checkpoint(
                self.out / "best",
                self.model,
                self.config,
                dict(self.last_metrics, step=self.done, diameter=self.data.diameter),
            )
        barrier(self.ranks)  # the checkpoints are on disk before any rank returns
        teardown(self.ranks)
        return {
            "step": self.done,
            "best": self.best.metrics,
            "last": self.last_metrics,
            "diameter": self.data.diameter,
            "seconds": time.perf_counter() - self.clock.t0,
            "cpu_seconds": self.clock.cpu(),
            "interrupted": self.stop.signal,
        }


def _train(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    train_samples: Any,
    val_samples: Any,
    device: str,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_at: int | None,
    stop: StopSignals,
    on_step: Callable[[dict[str, Any]], bool | None] | None,
) -> dict[str, Any]:
    out = Path(out_dir)
    ranks = ranks_from_env()
    dev = setup(ranks, choose_device(device), config.optim.batch_size)
    if ranks.main:
        check_run_folder(out, resume, overwrite)
    barrier(ranks)  # the others start once rank 0 has checked (and with --overwrite cleared) the folder
    torch.manual_seed(config.optim.seed)
    config, data = _prepare_data(config, train_samples, val_samples)
    end = config.optim.steps if stop_at is None else min(stop_at, config.optim.steps)
    run = _Run.create(config, out, ranks, dev, data, resume, end=end, stop=stop, on_step=on_step)
    run.open(resume, progress)
    run.run()
    return run.finish()

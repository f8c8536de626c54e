"""The training loop shared by every model type."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import choose_device
from ..errors import ConfigError, InputError
from ..models.registry import build_model
from .checkpoint import load_checkpoint, load_training_state, save_checkpoint
from .config import ExperimentConfig
from .data import Prepared, iterate_batches, load_samples_for, prepare

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
    from ..metrics import aggregate, evaluate_image
    from ..predict.paste import paste_instances

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
    return {"f1_50": float(agg["f1_50"]), "ap50": float(agg["ap50"]), "map": float(agg["map"]),
            "dsb_ap_50": float(agg["dsb_ap_50"]), "n_images": len(results)}


def train(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train a model; checkpoints go to ``out_dir/best`` and ``out_dir/last``.

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path
        Run folder: ``best/``, ``last/`` (model.safetensors, config.yaml,
        metrics.json; ``last`` also the training state), ``log.csv``,
        ``config.yaml``.
    device : {"auto", "cpu", "cuda", "mps"}
    resume : bool
        Continue from ``out_dir/last`` exactly where it stopped.
    overwrite : bool
        Start afresh in a folder that already holds a run (its checkpoints and
        log are deleted); without it such a folder is refused, so a finished
        run is never silently mixed with a new one.
    progress : bool
        Show a progress bar.
    stop_at : int, optional
        Stop after this step (as an interruption would); the schedule still
        runs to ``optim.steps``. Used to test exact resume.

    Returns
    -------
    dict
        ``step``, ``best`` validation metrics, ``last`` metrics, ``diameter``, ``seconds``.
    """
    opt_cfg = config.optim
    threads_before = torch.get_num_threads()
    if opt_cfg.threads > 0:
        torch.set_num_threads(opt_cfg.threads)
    try:
        return _train(config, out_dir, device, resume, overwrite, progress, stop_at)
    finally:
        torch.set_num_threads(threads_before)  # leave the caller's process as it was


def _train(config: ExperimentConfig, out_dir: str | Path, device: str | None, resume: bool, overwrite: bool,
           progress: bool, stop_at: int | None) -> dict[str, Any]:
    from tqdm import tqdm

    out = Path(out_dir)
    previous = [out / n for n in ("best", "last", "log.csv") if (out / n).exists()]
    if previous and not resume:
        if not overwrite:
            raise InputError("holds a training run already; use --resume to continue it or --overwrite to start again",
                             path=out)
        for p in previous:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    dev = choose_device(device)
    opt_cfg = config.optim
    torch.manual_seed(opt_cfg.seed)
    weak = config.weak
    if weak and not config.data.annotations:
        raise ConfigError("weak modes need data.annotations (lociseg annotate output folders, or 'from-labels')")

    machine = config.data.label_source == "machine"
    train_samples = load_samples_for(config, config.data.train, config.data.annotations if weak or machine else None,
                                     machine=machine)
    if not train_samples:
        raise ConfigError("data.train: no training images")
    if not weak and any(s.labels is None for s in train_samples):
        raise ConfigError("supervised training needs labels for every training image (or set lacss.mode to a weak mode)")
    train_items, diameter = prepare(train_samples, config, weak=weak)
    # Validation images are rescaled by the training factor's rule: their own GT diameter
    # would leak labels in weak runs, so weak runs reuse the training diameter.
    val_items: list[Prepared] = []
    if config.data.val:
        val_samples = load_samples_for(config, config.data.val)
        val_items, _ = prepare(val_samples, config, weak=False, diameter=diameter if weak or machine else None)
    log.info("training on %d images (%d val), diameter %.1f px -> scale %.3f", len(train_items), len(val_items),
             diameter, train_items[0].scale)

    model = build_model(config.model).to(dev)
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
        if not (out / "last").is_dir():
            raise InputError("nothing to resume (no last/ checkpoint)", path=out)
        state_model = load_checkpoint(out / "last", "cpu")
        model.load_state_dict(state_model.state_dict())
        meta = load_training_state(out / "last", optimizer, scheduler)
        start = int(meta["step"])
        clock["before"] = float(meta.get("elapsed", 0.0))
        best_score = float(meta.get("best_score", -1.0))
        best_metrics = meta.get("best_metrics", {})
    config.to_yaml(out / "config.yaml")

    amp = opt_cfg.amp and dev.type == "cuda"
    csv_log = _CsvLog(out / "log.csv", keep=resume)
    clock["t0"] = t0 = time.perf_counter()
    last_metrics: dict[str, float] = {}
    end = opt_cfg.steps if stop_at is None else min(stop_at, opt_cfg.steps)
    monitor = None
    if weak:
        from .diagnostics import CollapseMonitor

        wcfg = getattr(getattr(config, "lacss", None), "weak", None)
        # Coverage is judged once every warm-up (masks, then territory/collaborator) is done and has
        # settled, and only where the loss asks masks to cover a foreground (not in points mode).
        judge = wcfg is not None and wcfg.mode == "weak"
        monitor = CollapseMonitor(coverage_from=wcfg.warmup_start + 3 * wcfg.warmup_steps if judge else 0,
                                  coverage_limit=0.4 if judge else 0.0)
    bar = tqdm(total=opt_cfg.steps, initial=start, disable=not progress or None, desc="train", unit="step")
    step = start
    try:
        model.train()
        batches = iterate_batches(train_items, config, start, end, dev, weak=weak, workers=opt_cfg.workers)
        for step, batch in zip(range(start, end), batches):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = model.training_loss(batch, step)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RuntimeError(f"step {step}: loss is {loss_value}; lower optim.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt_cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            done = step + 1
            row: dict[str, Any] | None = None
            base = {"step": done, "seconds": round(time.perf_counter() - t0, 2),
                    "lr": scheduler.get_last_lr()[0], "loss": loss_value}
            if done % opt_cfg.log_every == 0 or done == end:
                row = {**base, **parts}
                if monitor is not None:
                    _weak_check(model, batch, monitor, done, row)
            if val_items and (done % opt_cfg.val_every == 0 or done == opt_cfg.steps):
                last_metrics = validate(model, val_items, dev)
                model.train()
                row = row or base
                row.update({f"val_{k}": v for k, v in last_metrics.items()})
                score = last_metrics.get("f1_50", -1.0)
                if not opt_cfg.select_best or score > best_score:
                    best_score, best_metrics = score, dict(last_metrics, step=done)
                    save_checkpoint(out / "best", model, config, dict(best_metrics, diameter=diameter))
                bar.write(f"step {done}: val F1@0.5 {last_metrics.get('f1_50', float('nan')):.3f} "
                          f"AP50 {last_metrics.get('ap50', float('nan')):.3f}")
            if row is not None:
                csv_log.write(row)
            if budget_s > 0 and elapsed() > budget_s:
                log.warning("stopping at step %d: wall-clock budget of %.1f min reached", done, opt_cfg.budget_minutes)
                step = done
                break
        else:
            step = end
    finally:
        bar.close()
        # Always leave a resumable checkpoint, also after an error or Ctrl-C.
        save_checkpoint(out / "last", model, config, dict(last_metrics, step=step, diameter=diameter),
                        optimizer=optimizer, scheduler=scheduler, step=step,
                        extra_state={"best_score": best_score, "best_metrics": best_metrics, "elapsed": elapsed()})
    if not (out / "best").exists():
        save_checkpoint(out / "best", model, config, dict(last_metrics, step=step, diameter=diameter))
    return {"step": step, "best": best_metrics, "last": last_metrics, "diameter": diameter,
            "seconds": time.perf_counter() - t0}


class _CsvLog:
    """``log.csv`` with one row per logged step; columns may appear late (weak terms), so the
    file is rewritten when the header grows and appended to otherwise."""

    def __init__(self, path: Path, keep: bool) -> None:
        self.path = path
        self.rows: list[dict] = []
        if keep and path.exists():
            with open(path, newline="") as fh:
                self.rows = list(csv.DictReader(fh))
        self.fields = list(self.rows[0].keys()) if self.rows else []
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


@torch.no_grad()
def _weak_check(model, batch: dict, monitor, step: int, row: dict) -> None:
    """Weak-training diagnostics on the first image of the batch, logged and checked for collapse."""
    from .diagnostics import weak_diagnostics

    if not hasattr(model, "seghead") or not len(batch["points"][0]):
        return
    was = model.training
    model.eval()
    try:
        _, _, dense = model(batch["image"][:1])
        logits, origins = model.seghead(dense[0], batch["points"][0])
        fg = batch.get("foreground")
        diag = weak_diagnostics(logits, origins, batch["points"][0], None if fg is None else fg[0])
    finally:
        model.train(was)
    row.update({f"diag_{k}": v for k, v in diag.items()})
    monitor.update(diag, step=step)

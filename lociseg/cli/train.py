"""``lociseg train``: train a model from a YAML experiment config."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import ConfigError


def _parse_sets(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc.__class__.__name__
            raise ConfigError(f"--set {key.strip()}: {value!r} is not a valid YAML value ({problem})") from None
    return out


def main(
    config: Path | None = typer.Option(None, "--config", "-c", help="Experiment config YAML (see --print-config)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder: best/, last/, log.csv, config.yaml."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config value, e.g. --set optim.steps=500 (repeatable)."
    ),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Fine-tune: start from this model's weights (shipped name such as cells, or a checkpoint / run folder).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last exactly where it stopped."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in an OUT that already holds a run."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the (default or given) config as YAML and exit."
    ),
    nproc: int = typer.Option(
        1,
        "--nproc",
        help="Train on N processes (DistributedDataParallel through torchrun: gloo on CPU, "
        "NCCL with one GPU each on CUDA); optim.batch_size is the batch of all of them together.",
    ),
) -> None:
    """Train a LACSS or U-Net model (supervised or weakly supervised).

    Checkpoints are folders of model.safetensors + config.yaml + metrics.json;
    OUT/best is the best on the validation split, OUT/last the latest (with
    the state for --resume; written every optim.checkpoint_every steps and
    optim.checkpoint_minutes, at the end, and on SIGTERM or Ctrl-C, which
    stop the run with status 143 or 130). Example:
    lociseg train -c configs/bbbc018_cells_supervised.yaml -o runs/cells --set optim.steps=2000 ;
    fine-tuning: add --init cells (the model's channels count, backbone and scale must match the config's).
    """
    from ..train.config import ExperimentConfig

    if config is not None and not config.is_file():
        problem = "this is a folder" if config.is_dir() else "no such file"
        raise ConfigError(f"--config must be a YAML file; {problem}", path=config)
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder (the run folder), not a file", path=out)
    if resume and config is None and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    cfg = ExperimentConfig.from_yaml(config) if config is not None else ExperimentConfig()
    if set_:
        cfg = cfg.override(_parse_sets(set_))
    if init is not None:
        cfg = cfg.override({"init": init})
    if print_config:
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if out is None:
        raise ConfigError("--out is required (the run folder)")
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ..train.run_control import check_run_folder

        if not overwrite:  # here, once: a refusal on one rank would leave the others in the first barrier
            check_run_folder(out, resume, overwrite)
        _torchrun(nproc)
        return
    from ..train.loop import train

    result = train(cfg, out, device=device, resume=resume, overwrite=overwrite, progress=True)
    if result.get("interrupted"):
        import signal

        typer.echo(
            f"stopped by {result['interrupted']} at step {result['step']}; {out / 'last'} saved. "
            f"Continue with: lociseg train -o {out} --resume"
        )
        raise typer.Exit(128 + int(signal.Signals[result["interrupted"]]))
    best = result.get("best") or {}
    typer.echo(
        f"done: {result['step']} steps in {result['seconds'] / 60:.1f} min; diameter {result['diameter']:.1f} px; "
        f"best val F1@0.5 {best.get('f1_50', float('nan')):.3f} AP50 {best.get('ap50', float('nan')):.3f} -> {out / 'best'}"
    )


def _torchrun(nproc: int) -> None:
    """Start this same command on ``nproc`` processes with torchrun (on this machine) and wait for them."""
    import sys

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "lociseg", *args])
    except ChildFailedError as exc:
        raise typer.Exit(1) from exc

"""``lociseg train``: train a model from a YAML experiment config (:func:`lociseg.train.loop.train`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError

# the options, in the order --help lists them
Config = Annotated[Path | None, typer.Option("--config", "-c", help="Experiment config YAML (see --print-config).")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder: best/, last/, log.csv, config.yaml.")]
Set = Annotated[
    list[str], typer.Option("--set", help="Override a config value, e.g. --set optim.steps=500 (repeatable).")
]
Init = Annotated[
    str | None,
    typer.Option(
        "--init",
        help="Fine-tune: start from this model's weights (shipped name such as cells, or a checkpoint / run folder).",
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from OUT/last exactly where it stopped.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start again in an OUT that already holds a run.")]
PrintConfig = Annotated[
    bool, typer.Option("--print-config", help="Print the (default or given) config as YAML and exit.")
]
Nproc = Annotated[
    int,
    typer.Option(
        "--nproc",
        help="Train on N processes (DistributedDataParallel through torchrun: gloo on CPU, "
        "NCCL with one GPU each on CUDA); optim.batch_size is the batch of all of them together.",
    ),
]


def main(
    config: Config = None,
    out: Out = None,
    set_: Set = [],  # noqa: B006 - typer's default, never mutated
    init: Init = None,
    device: Device = "auto",
    resume: Resume = False,
    overwrite: Overwrite = False,
    print_config: PrintConfig = False,
    nproc: Nproc = 1,
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
    from ..train.run_control import check_run_folder, run_config

    cfg = run_config(config, out, resume=resume, overrides=set_, init=init)
    if print_config:
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if out is None:
        raise ConfigError("--out is required (the run folder)")
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        if not overwrite:  # here, once: a refusal on one rank would leave the others in the first barrier
            check_run_folder(out, resume, overwrite)
        _torchrun(nproc)
        return
    from ..train.loop import train

    _report(train(cfg, out, device=device, resume=resume, overwrite=overwrite, progress=True), out)


def _report(result: dict[str, Any], out: Path) -> None:
    """Print how the run ended; a run stopped by a signal exits with 128 + its number."""
    if result.get("interrupted"):
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

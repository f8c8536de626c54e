"""``lociseg adapt``: fit a model to a lab's own unlabelled images in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import exit_if_failed, prepare_out_dir
from .annotate import _channel


def main(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or globs (multi-channel images)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder: the adapted model (use it as --model OUT), annotations/, segmentation/, report/index.html.",
    ),
    nucleus: str = typer.Option(..., "--nucleus", "-n", help="Nuclear channel, by name or index."),
    cytoplasm: str = typer.Option(..., "--cytoplasm", "-c", help="Cytoplasm / cell-body channel, by name or index."),
    minutes: float = typer.Option(15.0, "--minutes", help="Wall-clock budget of the fine-tuning."),
    from_: str = typer.Option("cells", "--from", help="Starting model: cells, nuclei, or a model folder."),
    targets: str = typer.Option(
        "evidence",
        "--targets",
        help="Training targets: machine, model, model+machine "
        "(the model's cells plus machine cells it missed), machine+model, or auto "
        "(per image: the model's outlines lead where model and annotation agree on most cells, else the annotation's), "
        "or evidence (the default: as auto, then a cell only the model found is kept only around a detected nucleus; "
        "docs/adapt.md).",
    ),
    steps: int | None = typer.Option(None, "--steps", help="Cap on the training steps (quick looks)."),
    resume: bool = typer.Option(False, "--resume", help="Go on from what an interrupted run left in OUT."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in an OUT that holds a run."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
) -> None:
    """Adapt a model to your own images without labelling any: machine annotations, fine-tuning, segmentation, report.

    Each image is annotated at its own scale (points from the nuclear stain,
    a foreground from the cytoplasm stain, cells split among the points); the
    starting model's cells, with the machine cells it missed, become the
    targets; the model is fine-tuned on them for --minutes; the images are
    segmented with the result, and OUT/report/index.html shows the chosen
    foregrounds, machine cells against the final model, before/after and the
    loss curve. Ctrl-C keeps what is done; --resume goes on. An image that
    cannot be used (blank channel, no nuclei) is reported and skipped.
    Example: lociseg adapt plate1/ --nucleus DNA --cytoplasm actin -o adapted --minutes 15 ;
    then: lociseg segment plate2/ --model adapted -o seg
    """
    import signal

    from ..errors import ConfigError
    from ..io.files import expand_inputs
    from ..report.adapt import TARGETS, adapt

    if minutes <= 0:
        raise ConfigError(f"--minutes must be positive, got {minutes}")
    if targets not in TARGETS:
        raise ConfigError(f"--targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    paths = expand_inputs(inputs)
    prepare_out_dir(out)
    result = adapt(
        paths,
        out,
        nucleus=_channel(nucleus),
        cytoplasm=_channel(cytoplasm),
        minutes=minutes,
        init=from_,
        targets=targets,
        steps=steps,
        resume=resume,
        overwrite=overwrite,
        device=device,
    )
    if result["interrupted"]:
        typer.echo(
            f"stopped by {result['interrupted']}; what is done is kept in {out}. "
            f"Continue with: lociseg adapt ... -o {out} --resume",
            err=True,
        )
        raise typer.Exit(128 + int(signal.Signals[result["interrupted"]]))
    typer.echo(
        f"adapted model: {out} ({result['train']['step']} steps); segmentation: {out / 'segmentation'}; "
        f"report: {result['report']}"
    )
    exit_if_failed({k: f"skipped: {v}" for k, v in result["skipped"].items()})

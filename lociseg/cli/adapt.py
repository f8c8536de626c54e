"""``lociseg adapt``: fit a model to a lab's own unlabelled images in one command (:func:`lociseg.report.adapt.adapt`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import exit_if_failed, prepare_out_dir
from .annotate import _channel

# the options, in the order --help lists them
Inputs = Annotated[list[str], typer.Argument(help="Image files, folders or globs (multi-channel images).")]
Out = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Folder: the adapted model (use it as --model OUT), annotations/, segmentation/, report/index.html.",
    ),
]
Nucleus = Annotated[str, typer.Option("--nucleus", "-n", help="Nuclear channel, by name or index.")]
Cytoplasm = Annotated[str, typer.Option("--cytoplasm", help="Cytoplasm / cell-body channel, by name or index.")]
Minutes = Annotated[float, typer.Option("--minutes", help="Wall-clock budget of the fine-tuning.")]
From = Annotated[str, typer.Option("--from", help="Starting model: cells, nuclei, or a model folder.")]
Targets = Annotated[
    str,
    typer.Option(
        "--targets",
        help="Training targets: machine, model, model+machine "
        "(the model's cells plus machine cells it missed), machine+model, or auto "
        "(per image: the model's outlines lead where model and annotation agree on most cells, else the annotation's), "
        "or evidence (the default: as auto, then a cell only the model found is kept only around a detected nucleus; "
        "docs/adapt.md).",
    ),
]
Steps = Annotated[int | None, typer.Option("--steps", help="Cap on the training steps (quick looks).")]
Resume = Annotated[bool, typer.Option("--resume", help="Go on from what an interrupted run left in OUT.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start again in an OUT that holds a run.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]


def main(
    inputs: Inputs,
    out: Out,
    nucleus: Nucleus,
    cytoplasm: Cytoplasm,
    minutes: Minutes = 15.0,
    from_: From = "cells",
    targets: Targets = "evidence",
    steps: Steps = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    device: Device = "auto",
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

    from ..io.files import expand_inputs
    from ..report.adapt import adapt
    from ..train.adapt import check_adapt_options

    check_adapt_options(minutes, steps, targets)
    paths = expand_inputs(inputs)
    prepare_out_dir(out)
    run, page = adapt(
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
    if run.interrupted:
        typer.echo(
            f"stopped by {run.interrupted}; what is done is kept in {out}. "
            f"Continue with: lociseg adapt ... -o {out} --resume",
            err=True,
        )
        raise typer.Exit(128 + int(signal.Signals[run.interrupted]))
    typer.echo(
        f"adapted model: {out} ({run.train['step']} steps); segmentation: {out / 'segmentation'}; report: {page}"
    )
    exit_if_failed({k: f"skipped: {v}" for k, v in run.skipped.items()})

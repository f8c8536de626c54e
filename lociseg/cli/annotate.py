"""``lociseg annotate``: machine-made points + foreground for weak training (:func:`lociseg.annotate.annotate_folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import OutputLock, check_new, exit_if_failed, prepare_out_dir

if TYPE_CHECKING:
    from ..annotate import FolderAnnotation
    from ..predict.selftrain import ModelCells

# the options, in the order --help lists them
Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, folders, globs, or one data set spec (bbbc018@train, cellprofiler-human)."),
]
Out = Annotated[
    Path,
    typer.Option("--out", "-o", help="Output folder for points, foreground, contact sheets, choices.csv, report."),
]
Nucleus = Annotated[str, typer.Option("--nucleus", "-n", help="Nuclear channel, by name or index.")]
Cytoplasm = Annotated[str, typer.Option("--cytoplasm", help="Cytoplasm / cell-body channel, by name or index.")]
Diameter = Annotated[
    float | None,
    typer.Option(
        "--diameter",
        "-d",
        help="Annotation scale as a cell diameter in px (default: measured per image from the nuclear stain; "
        "23 is BBBC018's). Given, an image where no nuclei are found is annotated anyway.",
    ),
]
Rule = Annotated[
    str,
    typer.Option(
        "--rule",
        help="Automatic foreground choice: 'level' (the stain's own level) or 'points' (the older BBBC018-tuned rule).",
    ),
]
FromLabels = Annotated[
    bool, typer.Option("--from-labels", help="Derive points/foreground from the data set's labels (benchmarking).")
]
Gt = Annotated[bool, typer.Option("--gt", help="Score the annotations against the data set's labels (report.csv).")]
Sheets = Annotated[bool, typer.Option("--sheets/--no-sheets", help="Write a contact-sheet PNG per image.")]
CellsFrom = Annotated[
    str | None,
    typer.Option(
        "--cells-from",
        help="Self-training: a model trained on these images' machine cells re-draws the cells (model folder or name).",
    ),
]
KeepMissed = Annotated[
    bool,
    typer.Option("--keep-missed/--no-keep-missed", help="With --cells-from: keep the machine cells the model missed."),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the annotations of an earlier run in --out (edited choices in choices.csv are kept).",
    ),
]
#: The columns whose means the command prints, where the report has them.
_SUMMARY = ("n_points", "points_inside", "fg_fraction", "point_precision", "point_recall", "fg_iou", "cells_f1")


def _channel(text: str) -> int | str:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def main(
    inputs: Inputs,
    out: Out,
    nucleus: Nucleus = "DNA",
    cytoplasm: Cytoplasm = "actin",
    diameter: Diameter = None,
    rule: Rule = "level",
    from_labels: FromLabels = False,
    gt: Gt = False,
    sheets: Sheets = True,
    cells_from: CellsFrom = None,
    keep_missed: KeepMissed = True,
    overwrite: Overwrite = False,
) -> None:
    """Make weak annotations: points from the nuclear stain, foreground from the cytoplasm stain.

    Points: difference of Gaussians on the nuclear channel. Foreground: five
    graph-cut candidates of the cytoplasm channel; one is chosen automatically
    (most points inside, least foreground far from points or in point-less
    pieces). Cells: the chosen foreground split among the points along the
    nuclei and the cytoplasm edges (pseudo-labels, <name>.cells.tif). Look
    at sheets/<name>.png, edit chosen_index in choices.csv to override, and
    re-run the same command with --overwrite: edited choices are kept.
    Example: lociseg annotate bbbc018@train --out ann_train --gt
    """
    from ..annotate.folder import annotate_folder, check_options
    from ..annotate.sources import image_sources

    check_options(diameter, rule)
    sources, notes = image_sources(inputs, [_channel(nucleus), _channel(cytoplasm)], gt=gt, from_labels=from_labels)
    # an earlier run's outputs are replaced only with --overwrite; checked before any work
    own = (out / f"{s.name.replace('/', '__')}{e}" for s in sources for e in (".points.csv", ".meta.json"))
    check_new([out / "choices.csv", out / "report.csv", out / "report.json", *own], overwrite)
    redraw = _redraw(cells_from, nucleus, cytoplasm, from_labels, keep_missed)
    prepare_out_dir(out)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    with OutputLock(out, "lociseg annotate"):
        run = annotate_folder(
            sources,
            out,
            nucleus=nucleus,
            cytoplasm=cytoplasm,
            diameter=diameter,
            rule=rule,
            from_labels=from_labels,
            sheets=out / "sheets" if sheets else None,
            redraw=redraw,
        )
    _summary(run, out)


def _summary(run: FolderAnnotation, out: Path) -> None:
    """Print what ``run`` did; exit 1 when an image failed, 130 when it was stopped."""
    import numpy as np

    done = run.annotated
    kept = sum(r.kept_choice for r in done)
    typer.echo(
        f"{len(done)} image(s) annotated ({kept} with a person's choice kept), {len(run.refused)} failed; "
        f"outputs in {out}"
    )
    if done:
        keys = [k for k in _SUMMARY if k in done[0].quality]
        typer.echo("mean " + ", ".join(f"{k}={np.nanmean([r.quality[k] for r in done]):.3f}" for k in keys))
    if run.interrupted:
        typer.echo(f"interrupted ({run.interrupted}); the images done are kept", err=True)
        raise typer.Exit(130)
    exit_if_failed(run.refused)


def _redraw(
    cells_from: str | None, nucleus: str, cytoplasm: str, from_labels: bool, keep_missed: bool
) -> ModelCells | None:
    """The model that re-draws the cells (``--cells-from``), or None; checked before any image is read."""
    if cells_from is None:
        return None
    from ..errors import ConfigError
    from ..predict.api import load_model
    from ..predict.selftrain import ModelCells, model_channel_order

    if from_labels:
        raise ConfigError("--cells-from re-draws machine cells; it does not combine with --from-labels")
    seg = load_model(cells_from)
    if seg.spec.in_channels != 2:
        raise ConfigError(
            f"--cells-from model {seg.name} takes {seg.spec.in_channels} channel(s); it must take the "
            "nuclear and the cytoplasm stain"
        )
    order, matched = model_channel_order(seg, nucleus, cytoplasm)
    if not matched:
        typer.echo(
            f"note: model {seg.name} names its channels {list(seg.spec.channels)}, this run "
            f"{[nucleus.strip().lower(), cytoplasm.strip().lower()]}; "
            "feeding it cytoplasm then nucleus, as lociseg's configs order them",
            err=True,
        )
    return ModelCells(seg, order, keep_missed)

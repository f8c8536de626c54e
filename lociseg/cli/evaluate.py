"""``lociseg evaluate``: score predicted label images against ground truth (:func:`lociseg.data.evaluate.evaluate_folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import debug_enabled, exit_if_failed

# the options, in the order --help lists them
Gt = Annotated[
    str,
    typer.Option(
        "--gt",
        help="Ground truth: folder or file of label images (TIFF/PNG/npy/txt), "
        "or a data set spec such as dsb2018-test, bbbc018:nuclei@test, koyuncu@test.",
    ),
]
Pred = Annotated[
    Path,
    typer.Option(
        "--pred",
        help="Predicted label images: a folder (matched to gt by file name, "
        "ignoring endings like _masks, _labels, .ome) or one file.",
    ),
]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Write metrics JSON here (and a CSV beside it).")]
ScoreColumn = Annotated[
    str,
    typer.Option(
        "--score-column",
        help="Score column of <name>.csv beside each "
        "prediction, used to rank objects for AP (all scores 1 without it).",
    ),
]
LabelColumn = Annotated[str, typer.Option("--label-column", help="Label column of the score tables.")]
GroupBy = Annotated[
    str,
    typer.Option(
        "--group-by",
        help="'auto' (data set group, else pred sub-folder), "
        "'folder', 'none', or a regular expression on the image name (first group).",
    ),
]
Images = Annotated[
    bool | None,
    typer.Option("--images/--no-images", help="Per-image rows in the printed table (default: when at most 30 images)."),
]
Root = Annotated[Path | None, typer.Option("--root", help="Data root for named data sets.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing metrics JSON/CSV.")]


def main(
    gt: Gt = ...,
    pred: Pred = ...,
    out: Out = None,
    score_column: ScoreColumn = "score",
    label_column: LabelColumn = "label",
    group_by: GroupBy = "auto",
    images: Images = None,
    root: Root = None,
    overwrite: Overwrite = False,
) -> int:
    r"""Score predicted label images against ground truth: F1, AP50, AP75, mAP, AFNR, PQ, ...

    Pairs are matched by file name. Objects are matched one-to-one at IoU
    0.50:0.05:0.95; counts are pooled over images for the ALL (sum) row and
    averaged per image for ALL (mean). Examples:
    lociseg evaluate --gt dsb2018-test --pred out/ -o metrics.json ;
    lociseg evaluate --gt masks/ --pred pred/ --group-by '^(\w+?)_'
    """
    from ..data.evaluate import MAX_IMAGE_ROWS, check_evaluate_options, evaluate_folder, write_report

    check_evaluate_options(pred, out, group_by, overwrite)
    scores = evaluate_folder(
        gt,
        pred,
        root=root,
        group_by=group_by,
        label_column=label_column,
        score_column=score_column,
        debug=debug_enabled(),
    )
    if not scores.images:
        if scores.matched != 1:  # with one pair, its own problem is the error
            for msg in scores.failures:
                typer.echo(f"failed: {msg}", err=True)
        raise scores.nothing_scored(pred)
    report = scores.report()
    typer.echo(report.table(images=images if images is not None else len(scores.images) <= MAX_IMAGE_ROWS))
    if scores.unscored:
        typer.echo(
            f"note: {scores.unscored} of {len(scores.images)} predictions have no score table; their objects rank as score 1"
        )
    if out is not None:
        typer.echo("wrote {} and {}".format(*write_report(report, out, overwrite)))
    for label, names in (("no prediction for", scores.missing_pred), ("no ground truth for", scores.missing_gt)):
        if names:
            typer.echo(
                f"{label} {len(names)} image(s): {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}", err=True
            )
    exit_if_failed(scores.failures)
    return 0

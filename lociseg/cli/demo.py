"""``lociseg demo``: segment example images from the shared data and write an HTML report."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ._common import check_new

log = logging.getLogger(__name__)


def main(
    out: Path = typer.Option(Path("lociseg-demo"), "--out", "-o", help="Report folder (index.html, PNGs, CSVs)."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Checkpoint or model name to use instead of the shipped defaults; "
        "1-channel models run on the nuclei sets, 2-channel on the cell sets.",
    ),
    per_set: int = typer.Option(2, "--per-set", "-n", help="Images from each data set."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the report in --out."),
) -> int:
    """Segment example images (CellProfiler/BBBC018 cells, DSB2018/Koyuncu nuclei) and write an HTML report.

    Uses the shipped models 'cells' and 'nuclei' (or --model). The report shows outlines over each image,
    cell size/shape histograms, a per-cell table with CSV, and metrics where ground truth exists.
    Needs the shared data (set LOCISEG_DATA).
    """
    from ..errors import ConfigError, LociError
    from ..predict.api import load_model
    from ..report.demo import run_demo

    if per_set < 1:
        raise ConfigError(f"--per-set must be at least 1, got {per_set}")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder (the report folder), not a file", path=out)
    check_new([out / "index.html"], overwrite)  # before any model runs
    segmenters = {}
    if model is not None:
        seg = load_model(model, device=device)
        kind = {1: "nuclei", 2: "cells"}.get(int(seg.spec.in_channels))
        if kind is None:
            raise ConfigError(
                f"the demo needs a 1-channel (nuclei) or 2-channel (cells) model; {model} takes {seg.spec.in_channels}"
            )
        segmenters[kind] = seg
    else:
        problems = []
        for kind in ("cells", "nuclei"):
            try:
                segmenters[kind] = load_model(kind, device=device)
            except LociError as exc:
                problems.append(f"{kind}: {exc}")
        if not segmenters:
            raise ConfigError("no shipped model could be loaded (" + "; ".join(problems) + "); pass --model PATH")
        for p in problems:
            log.warning("skipping %s", p)
    index = run_demo(out, segmenters, per_set=per_set, overwrite=overwrite)
    typer.echo(f"report written to {index}")
    return 0

"""``lociseg demo``: segment example images from the shared data and write an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer


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
    from ..report.demo import check_demo_options, demo_segmenters, run_demo

    check_demo_options(out, per_set, overwrite)  # before any model runs
    index = run_demo(out, demo_segmenters(model, device), per_set=per_set, overwrite=overwrite)
    typer.echo(f"report written to {index}")
    return 0

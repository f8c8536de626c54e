"""``lociseg synth``: extend a labelled data set with cut-and-paste synthetic images (:func:`lociseg.synth.folder.synth_folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from ._common import exit_if_failed


def _parse_confluence(text: str | None) -> float | tuple[float, float] | None:
    if text is None or text.strip().lower() in ("", "auto", "source"):
        return None
    try:
        parts = [float(v) for v in text.replace(":", ",").split(",")]
    except ValueError:
        raise ConfigError(f"--confluence: expected a number, LOW,HIGH or 'source', got {text!r}") from None
    if len(parts) not in (1, 2) or not all(0.0 <= v <= 0.95 for v in parts):
        raise ConfigError(f"--confluence: values must be in [0, 0.95] (one value or LOW,HIGH), got {text!r}")
    return parts[0] if len(parts) == 1 else (min(parts), max(parts))


# the options, in the order --help lists them
Dataset = Annotated[
    str,
    typer.Argument(
        help="Labelled data set spec (e.g. bbbc018, bbbc018@train, dsb2018-train) or images/+masks/ folder."
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (images/, masks/, annotations/, synth.json).")]
Factor = Annotated[
    float, typer.Option("--factor", help="Synthetic images per real labelled image (the seed study used 5).")
]
NImages = Annotated[
    int | None, typer.Option("--n-images", help="Exact number of synthetic images (overrides --factor).")
]
Confluence = Annotated[
    str | None,
    typer.Option(
        "--confluence",
        "--density",
        help="Cell-covered fraction per image: 0.4, a range 0.2,0.6, or 'source' (default: as the source image).",
    ),
]
Split = Annotated[str | None, typer.Option("--split", help="Split of the data set to draw cells from (e.g. train).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (output is a pure function of it).")]
Feather = Annotated[float, typer.Option("--feather", help="Width in px of the blended cell edge (0 = hard paste).")]
CellPool = Annotated[
    str, typer.Option("--cell-pool", help="Paste cells from 'all' images or only the background's 'source' image.")
]
MaxOverlap = Annotated[
    float, typer.Option("--max-overlap", help="Largest fraction of a pasted cell that may cover earlier cells.")
]
IncludeOriginals = Annotated[
    bool, typer.Option("--include-originals", help="Also copy the real images into the output folder.")
]
Limit = Annotated[int | None, typer.Option("--limit", help="Use only the first N real images (quick tries).")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace the synthetic data set of an earlier run in --out.")
]


def main(
    dataset: Dataset,
    out: Out = ...,
    factor: Factor = 5.0,
    n_images: NImages = None,
    confluence: Confluence = None,
    split: Split = None,
    seed: Seed = 0,
    feather: Feather = 1.0,
    cell_pool: CellPool = "all",
    max_overlap: MaxOverlap = 0.1,
    include_originals: IncludeOriginals = False,
    limit: Limit = None,
    overwrite: Overwrite = False,
) -> None:
    """Synthesise labelled images by pasting real cells onto cell-free background.

    Cells of DATASET are cut out and pasted at the chosen confluence onto
    background tiled from the same images; labels stay consistent with the
    pixels (occluded cells are relabelled, tiny remnants dropped) and weak
    annotations (points at cell centroids, foreground) are written too.
    Example: lociseg synth bbbc018@train --out synth_bbbc018 --factor 5
    """
    from ..synth.folder import synth_folder

    run = synth_folder(
        dataset,
        out,
        factor=factor,
        n_images=n_images,
        confluence=_parse_confluence(confluence),
        split=split,
        seed=seed,
        feather=feather,
        cell_pool=cell_pool,
        max_overlap=max_overlap,
        include_originals=include_originals,
        limit=limit,
        overwrite=overwrite,
    )
    typer.echo(f"wrote {run.written} synthetic images ({run.cells} cells from {run.real} real images) to {out}")
    exit_if_failed(run.failures)

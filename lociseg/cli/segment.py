"""``lociseg segment``: label every cell of many images with a trained model (:func:`lociseg.scale_out.segment_folder`)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ._common import debug_enabled, exit_if_failed


def _parse_channels(text: str | None) -> list | None:
    if text is None:
        return None
    items = [c.strip() for c in text.split(",") if c.strip()]
    return [int(c) if c.lstrip("-").isdigit() else c for c in items]


def _parse_diameter(text: str | None) -> float | str | None:
    """``--diameter``: a positive number of pixels, ``train`` or nothing."""
    from ..errors import ConfigError

    if text is None or text == "train":
        return text
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--diameter must be a number of pixels or 'train', got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"--diameter must be a positive number of pixels (at most the image size), got {text}")
    return value


def main(
    images: list[str] = typer.Argument(
        ...,
        help="Image files, folders, glob patterns (quote globs), or data set specs (cellprofiler-human, bbbc018@test).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Checkpoint file, run folder or shipped model name "
        "(default: the shipped 'nuclei' for 1-channel, 'cells' for 2-channel images).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for <name>.tif, <name>.csv, <name>.json."),
    diameter: str | None = typer.Option(
        None,
        "--diameter",
        "-d",
        help="Cell diameter in pixels, or 'train' for the diameter of "
        "the model's training images (default: estimated per image).",
    ),
    channels: str | None = typer.Option(
        None, "--channels", "-c", help="Channels to use, by name or index: actin,DNA or 0,1."
    ),
    tile_size: int = typer.Option(1024, "--tile-size", help="Tile side (px at model scale) for large images."),
    augment: bool = typer.Option(
        False,
        "--augment",
        help="Average the predictions of the four flips of each tile (test-time augmentation, about 4x the time).",
    ),
    overlaps: str = typer.Option(
        "score",
        "--overlaps",
        help="Who gets a pixel that two cells' masks claim: "
        "'score' (the higher-scoring cell) or 'probability' (the more confident mask: "
        "better borders between touching cells).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    max_image_pixels: int = typer.Option(
        2**30,
        "--max-image-pixels",
        help="Refuse images whose declared plane has more "
        "pixels than this (checked before decoding; raise it for larger images).",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Run on Dask: 'local' or 'local:N' (N worker processes here) or a scheduler address "
        "(tcp://host:8786, e.g. from dask-jobqueue). Needs pip install 'lociseg[dask]'.",
    ),
    block_size: int = typer.Option(
        4096,
        "--block-size",
        help="With --cluster: images larger than this (px, either side) are segmented in blocks "
        "of this side on the workers and written as <name>.ome.zarr (labels) instead of <name>.tif.",
    ),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Skip images whose outputs an earlier run wrote completely (checked against the sizes and checksums in <name>.json).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> int:
    """Segment every cell in images: writes a label TIFF, a per-cell CSV and a JSON sidecar per image.

    Examples: lociseg segment image.tif -o seg/ (shipped model chosen by channel count);
    lociseg segment plate1/ --model runs/cells --out seg/ --channels actin,DNA ;
    lociseg segment "data/*.tif" -m nuclei -o seg/ --diameter 30
    """
    from ..errors import ConfigError
    from ..predict.paste import OVERLAP_RULES
    from ..scale_out.folder import segment_folder

    diameter_px = _parse_diameter(diameter)
    if tile_size < 256 or tile_size % 32:
        raise ConfigError(f"--tile-size must be a multiple of 32, at least 256, got {tile_size}")
    if max_image_pixels < 1:
        raise ConfigError(f"--max-image-pixels must be at least 1, got {max_image_pixels}")
    if overlaps not in OVERLAP_RULES:
        raise ConfigError(f"--overlaps must be one of {', '.join(OVERLAP_RULES)}, got {overlaps!r}")
    run = segment_folder(
        images,
        model,
        out,
        cluster,
        device=device,
        diameter=diameter_px,
        channels=_parse_channels(channels),
        tile_size=tile_size,
        augment=augment,
        overlaps=overlaps,
        max_image_pixels=max_image_pixels,
        block_size=block_size,
        skip_existing=skip_existing,
        overwrite=overwrite,
        debug=debug_enabled(),
        on_note=lambda note: typer.echo(f"note: {note}", err=True),
    )
    typer.echo(f"{run.done} image(s) segmented, {run.skipped} skipped, {len(run.failures)} failed; outputs in {out}")
    exit_if_failed(run.failures)
    return 0

"""``lociseg segment``: label every cell of many images with a trained model (:func:`lociseg.scale_out.segment_folder`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

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


# the options, in the order --help lists them
Images = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders, glob patterns (quote globs), or data set specs (cellprofiler-human, bbbc018@test).",
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Checkpoint file, run folder or shipped model name "
        "(default: the shipped 'nuclei' for 1-channel, 'cells' for 2-channel images).",
    ),
]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="Output folder for <name>.tif, <name>.csv, <name>.lociseg.json.")
]
Diameter = Annotated[
    str | None,
    typer.Option(
        "--diameter",
        "-d",
        help="Cell diameter in pixels, or 'train' for the diameter of "
        "the model's training images (default: estimated per image).",
    ),
]
Channels = Annotated[
    str | None, typer.Option("--channels", "-c", help="Channels to use, by name or index: actin,DNA or 0,1.")
]
TileSize = Annotated[int, typer.Option("--tile-size", help="Tile side (px at model scale) for large images.")]
Augment = Annotated[
    bool,
    typer.Option(
        "--augment",
        help="Average the predictions of the four flips of each tile (test-time augmentation, about 4x the time).",
    ),
]
Overlaps = Annotated[
    str,
    typer.Option(
        "--overlaps",
        help="Who gets a pixel that two cells' masks claim: "
        "'score' (the higher-scoring cell) or 'probability' (the more confident mask: "
        "better borders between touching cells).",
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Runtime of the network: torch, or onnx (ONNX Runtime on the CPU; pip install 'lociseg\\[onnx]').",
    ),
]
MaxImagePixels = Annotated[
    int,
    typer.Option(
        "--max-image-pixels",
        help="Refuse images whose declared plane has more "
        "pixels than this (checked before decoding; raise it for larger images).",
    ),
]
Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Run on Dask: 'local' or 'local:N' (N worker processes here) or a scheduler address "
        "(tcp://host:8786, e.g. from dask-jobqueue). Needs pip install 'lociseg\\[dask]'.",
    ),
]
BlockSize = Annotated[
    int,
    typer.Option(
        "--block-size",
        help="With --cluster: images at least this large (px, either side) are segmented in blocks "
        "of this side on the workers and written as <name>.ome.zarr (labels) instead of <name>.tif.",
    ),
]
SkipExisting = Annotated[
    bool,
    typer.Option(
        "--skip-existing",
        help="Skip images whose outputs an earlier run wrote completely (checked against the sizes and checksums in <name>.lociseg.json).",
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]


def main(
    images: Images,
    model: Model = None,
    out: Out = ...,
    diameter: Diameter = None,
    channels: Channels = None,
    tile_size: TileSize = 1024,
    augment: Augment = False,
    overlaps: Overlaps = "score",
    device: Device = "auto",
    backend: Backend = "torch",
    max_image_pixels: MaxImagePixels = 2**30,
    cluster: Cluster = None,
    block_size: BlockSize = 4096,
    skip_existing: SkipExisting = False,
    overwrite: Overwrite = False,
) -> int:
    """Segment every cell in images: writes a label TIFF, a per-cell CSV and a JSON sidecar per image.

    Examples: lociseg segment image.tif -o seg/ (shipped model chosen by channel count);
    lociseg segment plate1/ --model runs/cells --out seg/ --channels actin,DNA ;
    lociseg segment "data/*.tif" -m nuclei -o seg/ --diameter 30
    """
    from ..scale_out.folder import segment_folder

    run = segment_folder(
        images,
        model,
        out,
        cluster,
        device=device,
        backend=backend,
        diameter=_parse_diameter(diameter),
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

"""``lociseg export``: convert label images to OME-Zarr, QuPath GeoJSON, ImageJ ROIs, COCO or CSV (:func:`lociseg.export.folder.export_folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import debug_enabled, exit_if_failed

# the options, in the order --help lists them
Labels = Annotated[list[str], typer.Argument(help="Label images (TIFF/PNG/npy), folders or glob patterns.")]
Formats = Annotated[
    list[str],
    typer.Option("--format", "-f", help="ome-zarr, geojson, imagej-roi, coco or csv (repeat or comma-separate)."),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Images = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="Folder of the raw images (same names): stored in OME-Zarr (with channel names), mean intensities in CSV, COCO file_name.",
    ),
]
ObjectType = Annotated[
    str,
    typer.Option(
        "--object-type",
        help="QuPath object type in GeoJSON: detection, annotation, or cell (cell + nucleus outline; needs --nuclei).",
    ),
]
Nuclei = Annotated[
    Path | None,
    typer.Option(
        "--nuclei",
        help="With --object-type cell: the nucleus label images, one file or a folder (same names as the labels); "
        "nucleus k belongs to cell k.",
    ),
]
Classification = Annotated[str, typer.Option("--class", help="QuPath class name in GeoJSON and COCO category.")]
PixelSize = Annotated[float | None, typer.Option("--pixel-size", help="Micrometres per pixel (OME-Zarr scale).")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (otherwise nothing is written when one exists).")
]


def main(
    labels: Labels,
    fmt: Formats = ...,
    out: Out = ...,
    images: Images = None,
    object_type: ObjectType = "detection",
    nuclei: Nuclei = None,
    classification: Classification = "cell",
    pixel_size: PixelSize = None,
    overwrite: Overwrite = False,
) -> int:
    """Convert label images (e.g. from lociseg segment) for QuPath, napari, ImageJ/Fiji, COCO tools or spreadsheets.

    One output per input and format: <name>.ome.zarr, <name>.geojson, <name>.roi.zip, <name>.cells.csv;
    COCO writes one annotations.coco.json for all inputs.
    Example: lociseg export seg/*.tif --format geojson,imagej-roi --out qupath/ --images plate1/
    """
    from ..export.folder import export_folder, parse_formats

    run = export_folder(
        labels,
        out,
        parse_formats(fmt, object_type, nuclei, images, pixel_size),
        images=images,
        object_type=object_type,
        nuclei=nuclei,
        classification=classification,
        pixel_size=pixel_size,
        overwrite=overwrite,
        debug=debug_enabled(),
        on_note=lambda note: typer.echo(f"note: {note}", err=True),
    )
    if run.coco is not None:
        typer.echo(f"COCO: {run.coco_images} image(s), {run.coco_annotations} annotation(s) in {run.coco}")
    typer.echo(f"{run.written} file(s) written to {out}; {len(run.failures)} input(s) failed")
    exit_if_failed(run.failures)
    return 0

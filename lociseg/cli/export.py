"""``lociseg export``: convert label images to OME-Zarr, QuPath GeoJSON, ImageJ ROIs, COCO or CSV."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._common import OutputLock, check_new, exit_if_failed, prepare_out_dir, run_batch, unique_names


def _match_image(label_path: Path, image_dir: Path) -> Path | None:
    """The image in ``image_dir`` named like the label file (ignoring _masks/_labels)."""
    from ..io.files import image_stem
    from ..io.image import image_suffix_ok

    base = image_stem(label_path)
    for p in sorted(image_dir.iterdir()):
        if p.is_file() and image_suffix_ok(p) and image_stem(p, suffixes=()) == base:
            return p
    return None


def _nuclei_for(label_path: Path, nuclei: Path, shape: tuple[int, ...]) -> object:
    """The nucleus label image of ``label_path``: ``nuclei`` itself (a file) or its namesake in ``nuclei`` (a folder)."""
    from ..errors import InputError
    from ..io import read_labels

    found = nuclei if nuclei.is_file() else _match_image(label_path, nuclei)
    if found is None:
        raise InputError(f"no nucleus label image named like it in {nuclei}", path=label_path)
    nuc = read_labels(found)
    if nuc.shape != shape:
        raise InputError(f"nucleus labels {found.name} are {nuc.shape}, cell labels are {shape}", path=label_path)
    return nuc


def _image_for(label_path: Path, images: Path, shape: tuple[int, ...]) -> tuple[object, str, list[str] | None]:
    """The raw image of ``label_path`` in ``images``: pixels, file name and channel names (None when unknown)."""
    from ..errors import InputError
    from ..io import read_image, read_image_metadata
    from ..io.files import image_stem

    ip = _match_image(label_path, images)
    if ip is None:
        raise InputError(f"no image named {image_stem(label_path)!r} in {images}", path=label_path)
    image = read_image(ip)
    if image.shape[-2:] != shape:
        raise InputError(f"image {ip.name} is {image.shape[-2:]}, labels are {shape}", path=label_path)
    names = read_image_metadata(ip)["channel_names"]
    if names is not None and len(names) != (1 if image.ndim == 2 else image.shape[0]):
        names = None  # e.g. RGB read as channels: fall back to numbered names
    return image, ip.name, names


def _check_options(
    fmt: list[str], known: object, object_type: str, nuclei: Path | None, images: Path | None, pixel_size: float | None
) -> list[str]:
    """The requested formats, after refusing any option that cannot work (one line each)."""
    from ..errors import ConfigError

    formats = [f.strip().lower() for item in fmt for f in item.split(",") if f.strip()]
    bad = [f for f in formats if f not in known]
    if bad:
        raise ConfigError(f"unknown format {bad[0]!r}; choose from {', '.join(known)}")
    if object_type not in ("detection", "annotation", "cell"):
        raise ConfigError(f"--object-type must be detection, annotation or cell, got {object_type!r}")
    if (object_type == "cell") != (nuclei is not None):
        raise ConfigError("--object-type cell and --nuclei go together (QuPath cells have a nucleus outline)")
    if nuclei is not None and not nuclei.exists():
        raise ConfigError("--nuclei: no such file or folder", path=nuclei)
    if images is not None and not images.is_dir():
        raise ConfigError("--images must be a folder", path=images)
    if pixel_size is not None and not pixel_size > 0:
        raise ConfigError(f"--pixel-size must be positive, got {pixel_size}")
    return formats


def main(
    labels: list[str] = typer.Argument(..., help="Label images (TIFF/PNG/npy), folders or glob patterns."),
    fmt: list[str] = typer.Option(
        ..., "--format", "-f", help="ome-zarr, geojson, imagej-roi, coco or csv (repeat or comma-separate)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Folder of the raw images (same names): stored in OME-Zarr (with channel names), mean intensities in CSV, COCO file_name.",
    ),
    object_type: str = typer.Option(
        "detection",
        "--object-type",
        help="QuPath object type in GeoJSON: detection, annotation, or cell (cell + nucleus outline; needs --nuclei).",
    ),
    nuclei: Path | None = typer.Option(
        None,
        "--nuclei",
        help="With --object-type cell: the nucleus label images, one file or a folder (same names as the labels); "
        "nucleus k belongs to cell k.",
    ),
    classification: str = typer.Option("cell", "--class", help="QuPath class name in GeoJSON and COCO category."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Micrometres per pixel (OME-Zarr scale)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing outputs (otherwise nothing is written when one exists)."
    ),
) -> int:
    """Convert label images (e.g. from lociseg segment) for QuPath, napari, ImageJ/Fiji, COCO tools or spreadsheets.

    One output per input and format: <name>.ome.zarr, <name>.geojson, <name>.roi.zip, <name>.cells.csv;
    COCO writes one annotations.coco.json for all inputs.
    Example: lociseg export seg/*.tif --format geojson,imagej-roi --out qupath/ --images plate1/
    """
    from ..export.formats import FORMATS, SUFFIX, export_labels, write_coco
    from ..io import read_labels
    from ..io.files import expand_inputs, image_stem
    from ..io.labels import refuse_intensity_image

    formats = _check_options(fmt, FORMATS, object_type, nuclei, images, pixel_size)
    files = expand_inputs(labels)
    names, notes = unique_names([image_stem(p, suffixes=()) for p in files], [str(p) for p in files])
    coco_path = out / "annotations.coco.json"
    # every output is checked before any is written: a refusal changes nothing
    check_new(
        [out / f"{n}{SUFFIX[f]}" for n in names for f in formats if f != "coco"]
        + ([coco_path] if "coco" in formats else []),
        overwrite,
    )
    prepare_out_dir(out)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    coco_labels: dict[str, object] = {}

    def export_one(job: tuple[Path, str]) -> int:
        path, name = job
        lab = read_labels(path)
        refuse_intensity_image(lab, path)
        image, image_name, channel_names = None, path.name, None
        if images is not None and any(f in ("ome-zarr", "csv", "coco") for f in formats):
            image, image_name, channel_names = _image_for(path, images, lab.shape)
        if name != image_stem(path, suffixes=()):
            image_name = f"{name}{image_name[len(image_stem(image_name, suffixes=())) :]}"  # renamed: unique file_name
        n = 0
        for f in formats:
            if f == "coco":
                coco_labels[image_name] = lab  # file_name: the image the masks belong to
                continue
            if f == "geojson":
                kw: dict = {"object_type": object_type, "classification": classification}
                if nuclei is not None:
                    kw["nuclei"] = _nuclei_for(path, nuclei, lab.shape)
            elif f == "ome-zarr":
                kw = {"image": image, "pixel_size": pixel_size, "channel_names": channel_names}
            else:
                kw = {"image": image}
            export_labels(lab, out, name, f, overwrite=overwrite, **kw)
            n += 1
        return n

    with OutputLock(out, "lociseg export"):
        results, failures = run_batch(
            [(str(p), (p, n)) for p, n in zip(files, names)], export_one, out=out, progress="export"
        )
        written = sum(results.values())
        if coco_labels:
            p = write_coco(coco_path, coco_labels, category=classification, overwrite=overwrite)
            n = len(json.loads(p.read_text())["annotations"])
            typer.echo(f"COCO: {len(coco_labels)} image(s), {n} annotation(s) in {p}")
            written += 1
    typer.echo(f"{written} file(s) written to {out}; {len(failures)} input(s) failed")
    exit_if_failed(failures)
    return 0

"""Export many label images at once: the library behind ``lociseg export``.

:func:`export_folder` expands the inputs (files, folders, glob patterns),
gives each a unique output name, refuses before writing anything when an
output exists, and writes every requested format of each input with
:func:`~lociseg.export.formats.export_labels` (COCO: one file for all
inputs); one input's failure never stops the others.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import OutputLock, check_new, prepare_out_dir, run_batch, unique_names
from ..errors import ConfigError, InputError
from ..io import read_image, read_image_metadata, read_labels
from ..io.files import expand_inputs, image_stem
from ..io.image import image_suffix_ok
from ..io.labels import refuse_intensity_image
from .formats import FORMATS, SUFFIX, export_labels, write_coco

log = logging.getLogger(__name__)

#: QuPath object types of GeoJSON features (``cell`` needs nucleus labels).
OBJECT_TYPES = ("detection", "annotation", "cell")
#: One COCO file for all inputs, in the output folder.
COCO_NAME = "annotations.coco.json"


@dataclass
class ExportRun:
    """What :func:`export_folder` wrote.

    Attributes
    ----------
    written : int
        Files (or OME-Zarr folders) written, the COCO file included.
    failures : dict
        Input -> one-line reason, for the inputs that failed.
    coco : Path or None
        The COCO file, when written.
    coco_images, coco_annotations : int
        Images and annotations in it.
    """

    written: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    coco: Path | None = None
    coco_images: int = 0
    coco_annotations: int = 0


def _match_image(label_path: Path, image_dir: Path) -> Path | None:
    """The image in ``image_dir`` named like the label file (ignoring _masks/_labels)."""
    base = image_stem(label_path)
    for p in sorted(image_dir.iterdir()):
        if p.is_file() and image_suffix_ok(p) and image_stem(p, suffixes=()) == base:
            return p
    return None


def _nuclei_for(label_path: Path, nuclei: Path, shape: tuple[int, ...]) -> object:
    """The nucleus label image of ``label_path``: ``nuclei`` itself (a file) or its namesake in ``nuclei`` (a folder)."""
    found = nuclei if nuclei.is_file() else _match_image(label_path, nuclei)
    if found is None:
        raise InputError(f"no nucleus label image named like it in {nuclei}", path=label_path)
    nuc = read_labels(found)
    if nuc.shape != shape:
        raise InputError(f"nucleus labels {found.name} are {nuc.shape}, cell labels are {shape}", path=label_path)
    return nuc


def _image_for(label_path: Path, images: Path, shape: tuple[int, ...]) -> tuple[object, str, list[str] | None]:
    """The raw image of ``label_path`` in ``images``: pixels, file name and channel names (None when unknown)."""
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


def parse_formats(
    fmt: Sequence[str], object_type: str, nuclei: Path | None, images: Path | None, pixel_size: float | None
) -> list[str]:
    """The requested formats (repeated or comma-separated), after refusing any option that cannot work.

    Raises
    ------
    ConfigError
        One line naming the ``lociseg export`` option at fault.
    """
    formats = [f.strip().lower() for item in fmt for f in item.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"unknown format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    if object_type not in OBJECT_TYPES:
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


@dataclass
class _Exporter:
    """Writes the formats of one input (``run_batch``'s function); collects the COCO labels."""

    out: Path
    formats: list[str]
    images: Path | None
    nuclei: Path | None
    object_type: str
    classification: str
    pixel_size: float | None
    overwrite: bool
    coco_labels: dict[str, object] = field(default_factory=dict)

    def __call__(self, job: tuple[Path, str]) -> int:
        path, name = job
        lab = read_labels(path)
        refuse_intensity_image(lab, path)
        image, image_name, channel_names = None, path.name, None
        if self.images is not None and any(f in ("ome-zarr", "csv", "coco") for f in self.formats):
            image, image_name, channel_names = _image_for(path, self.images, lab.shape)
        if name != image_stem(path, suffixes=()):
            image_name = f"{name}{image_name[len(image_stem(image_name, suffixes=())) :]}"  # renamed: unique file_name
        n = 0
        for f in self.formats:
            if f == "coco":
                self.coco_labels[image_name] = lab  # file_name: the image the masks belong to
                continue
            export_labels(
                lab, self.out, name, f, overwrite=self.overwrite, **self._options(f, path, lab, image, channel_names)
            )
            n += 1
        return n

    def _options(self, f: str, path: Path, lab: Any, image: Any, channel_names: list[str] | None) -> dict[str, Any]:
        if f == "geojson":
            kw: dict[str, Any] = {"object_type": self.object_type, "classification": self.classification}
            if self.nuclei is not None:
                kw["nuclei"] = _nuclei_for(path, self.nuclei, lab.shape)
            return kw
        if f == "ome-zarr":
            return {"image": image, "pixel_size": self.pixel_size, "channel_names": channel_names}
        return {"image": image}


def export_folder(
    labels: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    formats: Sequence[str],
    *,
    images: Path | None = None,
    object_type: str = "detection",
    nuclei: Path | None = None,
    classification: str = "cell",
    pixel_size: float | None = None,
    overwrite: bool = False,
    debug: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> ExportRun:
    """Write every format of :func:`parse_formats` for each label image of ``labels`` into ``out``.

    Parameters
    ----------
    labels : sequence of str or path-like
        Label images, folders or glob patterns.
    out : path-like
        Output folder (created, and locked while written).
    formats : sequence of str
        Names from :data:`~lociseg.export.formats.FORMATS`.
    images : Path, optional
        Folder of the raw images, named like the labels (OME-Zarr pixels and
        channel names, CSV intensities, COCO ``file_name``).
    object_type, classification : str
        QuPath object type and class of the GeoJSON features (the class is the COCO category too).
    nuclei : Path, optional
        Nucleus label images (a file, or a folder named like the labels) for ``object_type="cell"``.
    pixel_size : float, optional
        Micrometres per pixel (OME-Zarr scale).
    overwrite : bool
        Replace existing outputs; otherwise an existing one stops the run before anything is written.
    debug : bool
        Tracebacks of failures on stderr instead of the error log.
    on_note : callable, optional
        Receives each note on the inputs (renamed outputs); default: logged as a warning.

    Returns
    -------
    ExportRun
    """
    out = Path(out)
    files = expand_inputs([os.fspath(p) for p in labels])
    names, notes = unique_names([image_stem(p, suffixes=()) for p in files], [str(p) for p in files])
    coco_path = out / COCO_NAME
    # every output is checked before any is written: a refusal changes nothing
    check_new(
        [out / f"{n}{SUFFIX[f]}" for n in names for f in formats if f != "coco"]
        + ([coco_path] if "coco" in formats else []),
        overwrite,
    )
    prepare_out_dir(out)
    for note in notes:
        (on_note or log.warning)(note)
    export_one = _Exporter(out, list(formats), images, nuclei, object_type, classification, pixel_size, overwrite)
    run = ExportRun()
    with OutputLock(out, "lociseg export"):
        results, run.failures = run_batch(
            [(str(p), (p, n)) for p, n in zip(files, names)], export_one, out=out, progress="export", debug=debug
        )
        run.written = sum(results.values())
        if export_one.coco_labels:
            run.coco = write_coco(coco_path, export_one.coco_labels, category=classification, overwrite=overwrite)
            run.coco_images = len(export_one.coco_labels)
            run.coco_annotations = len(json.loads(run.coco.read_text())["annotations"])
            run.written += 1
    return run

"""Annotating many images: one record per image, and one rule for refusing an image.

:func:`annotate_folder` is the work behind ``lociseg annotate`` and the
first stage of ``lociseg adapt``: each image of :func:`image_sources` is
checked (:func:`check_stains`), annotated (:func:`annotate_image`) and
written to one folder (:func:`write_annotation`, a contact sheet,
``choices.csv``, ``report.csv``/``report.json``). An image that cannot be
read or used is refused with a one-line reason and the others go on.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, InputError, describe_error
from ..io.files import atomic_write
from .foreground import RULES
from .labels import annotation_report, weak_from_labels
from .pipeline import annotate_image, estimate_cell_scale
from .sheet import read_choices, write_choices, write_contact_sheet
from .sources import ImageSource, SourceImage
from .store import annotation_files, read_annotation, read_annotation_meta, read_cells, write_annotation

__all__ = [
    "MIN_NUCLEI",
    "AnnotatedImage",
    "CellRedraw",
    "FolderAnnotation",
    "annotate_folder",
    "check_options",
    "check_stains",
]

log = logging.getLogger("lociseg.annotate")

#: Fewer nucleus-sized spots than this give no scale and nothing to learn from.
MIN_NUCLEI = 3


class CellRedraw(Protocol):
    """Draws an image's cells after its machine annotation, e.g. with a model (:class:`lociseg.predict.selftrain.ModelCells`)."""

    #: Whether the machine cells are drawn first and handed over (else ``machine`` is None).
    needs_machine_cells: bool

    def __call__(self, image: np.ndarray, machine: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
        """The cells of a (nucleus, cytoplasm) image, and what to add to its ``meta.json``."""
        ...


@dataclass
class AnnotatedImage:
    """What :func:`annotate_folder` did with one image.

    Attributes
    ----------
    name, origin : str
        Output name and where the image came from (:class:`ImageSource`).
    refused : str or None
        Why the image was not annotated (one line), or None.
    outputs : list of Path
        The files written for it (annotation files, contact sheet).
    diameter : float or None
        The annotation scale (a cell diameter in px).
    diameter_estimated : bool
        Measured from the nuclear stain (:func:`estimate_cell_scale`).
    auto_index, chosen_index : int
        Foreground candidate picked automatically and used (-1: from labels).
    threshold : float or None
        The chosen candidate's threshold.
    kept_choice : bool
        A person's choice from ``choices.csv`` was used.
    quality : dict
        :func:`annotation_report` of the annotation (scores against the
        ground truth too with ``gt``).
    reused : bool
        Read back from an earlier run (``reuse``), not annotated again.
    image, points, cells : ndarray or None
        The (nucleus, cytoplasm) image, points and machine cells, with
        ``keep_arrays`` only.
    """

    name: str
    origin: str
    refused: str | None = None
    outputs: list[Path] = field(default_factory=list)
    diameter: float | None = None
    diameter_estimated: bool = False
    auto_index: int = -1
    chosen_index: int = -1
    threshold: float | None = None
    kept_choice: bool = False
    quality: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    image: np.ndarray | None = None
    points: np.ndarray | None = None
    cells: np.ndarray | None = None

    def choice_row(self) -> dict[str, Any]:
        """The image's row of ``choices.csv``."""
        q = self.quality
        return {
            "name": self.name,
            "chosen_index": self.chosen_index,
            "auto_index": self.auto_index,
            "threshold": "" if self.threshold is None else self.threshold,
            "n_points": q.get("n_points"),
            "fg_fraction": round(q.get("fg_fraction", float("nan")), 4),
            "points_inside": round(q.get("points_inside", float("nan")), 4),
        }


@dataclass
class FolderAnnotation:
    """What :func:`annotate_folder` did: one record per image, and whether it was stopped.

    Attributes
    ----------
    records : list of AnnotatedImage
        In input order; images after a stop are not in it.
    interrupted : str or None
        ``"SIGINT"`` (Ctrl-C), ``"cancelled"`` (``cancel``) or None.
    """

    records: list[AnnotatedImage] = field(default_factory=list)
    interrupted: str | None = None

    @property
    def annotated(self) -> list[AnnotatedImage]:
        return [r for r in self.records if r.refused is None]

    @property
    def refused(self) -> dict[str, str]:
        """Name -> reason of each refused image."""
        return {r.name: r.refused for r in self.records if r.refused is not None}


def check_stains(image: np.ndarray, diameter: float | None = None) -> tuple[float, bool]:
    """The rule for refusing an image: the annotation scale of a usable (nucleus, cytoplasm) image.

    An image is refused when it has fewer than two channels, when a channel
    is blank (one value everywhere) or not finite, or, when no ``diameter``
    is given, when fewer than :data:`MIN_NUCLEI` nuclei are found to
    measure the scale from (:func:`estimate_cell_scale`).

    Returns
    -------
    diameter : float
        ``diameter``, or the one measured.
    estimated : bool
        Whether it was measured.

    Raises
    ------
    InputError
        The image is refused; the message says why.
    """
    if image.ndim != 3 or image.shape[0] < 2:
        raise InputError(f"need a nuclear and a cytoplasm channel, got shape {image.shape}")
    for k, what in enumerate(("nuclear", "cytoplasm")):
        if not np.isfinite(image[k]).all():
            raise InputError(f"the {what} channel has values that are not finite (NaN or infinity)")
        if np.ptp(image[k]) == 0:
            raise InputError(f"the {what} channel is blank (one value everywhere)")
    if diameter is not None:
        return float(diameter), False
    measured, n = estimate_cell_scale(image[0])
    if n < MIN_NUCLEI or not np.isfinite(measured):
        raise InputError(f"no nuclei found in the nuclear channel ({n} nucleus-like spot(s): blank or wrong channel?)")
    return measured, True


def check_options(diameter: float | None, rule: str) -> None:
    """Refuse a ``diameter`` or ``rule`` :func:`annotate_folder` cannot use (before any work).

    Raises
    ------
    ConfigError
        Naming the option.
    """
    if rule not in RULES:
        raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    if diameter is not None and not (0 < diameter < float("inf")):
        raise ConfigError(f"--diameter must be a positive, finite number of pixels, got {diameter}")


def annotate_folder(
    sources: Sequence[ImageSource],
    out: str | os.PathLike,
    *,
    nucleus: str | int,
    cytoplasm: str | int,
    diameter: float | None = None,
    rule: str = "level",
    from_labels: bool = False,
    sheets: str | os.PathLike | None = None,
    redraw: CellRedraw | None = None,
    reuse: bool = False,
    keep_arrays: bool = False,
    progress: bool = True,
    cancel: Callable[[float], bool] | None = None,
) -> FolderAnnotation:
    """Annotate each image of ``sources`` into ``out``; an image that cannot be used is refused, the others go on.

    Parameters
    ----------
    sources : sequence of ImageSource
        From :func:`image_sources`.
    out : path
        Folder: per image the files of :func:`write_annotation` (with the
        foreground candidates), ``choices.csv`` (a person's edited choices
        in it are kept and used) and ``report.csv``/``report.json``.
        Existing files are replaced: the caller checks first.
    nucleus, cytoplasm : str or int
        The channels' names, recorded in each ``meta.json``.
    diameter : float, optional
        Annotation scale in px; measured per image when not given.
    rule : str
        Automatic foreground choice (:data:`~lociseg.annotate.RULES`).
    from_labels : bool
        Points and foreground from the sources' labels instead.
    sheets : path, optional
        Folder for a contact sheet per image.
    redraw : CellRedraw, optional
        Draws the cells another way (a model) before they are written.
    reuse : bool
        An image whose points, foreground and cells are stored in ``out`` is
        read back, not annotated again (resuming).
    keep_arrays : bool
        Keep each image, its points and cells in its record.
    progress : bool
        A progress bar on the terminal.
    cancel : callable, optional
        ``cancel(fraction done)`` before each image; True stops there.

    Returns
    -------
    FolderAnnotation

    Raises
    ------
    ConfigError
        A bad option (:func:`check_options`), or one that would refuse every image alike.

    Notes
    -----
    One rule refuses an image: it cannot be read, :func:`check_stains`
    refuses it, or its annotation has no cells. Every error but a
    :class:`~lociseg.errors.ConfigError` is such a refusal.
    """
    check_options(diameter, rule)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"nucleus": nucleus, "cytoplasm": cytoplasm, "diameter": diameter, "rule": rule}
    previous = read_choices(out / "choices.csv")
    run = FolderAnnotation()
    try:
        for k, src in enumerate(tqdm(sources, desc="annotate", unit="image", disable=None if progress else True)):
            if cancel is not None and cancel(k / max(1, len(sources))):
                run.interrupted = "cancelled"
                break
            try:
                if reuse and _stored(out, src.name):
                    record = _read_back(out, src)
                else:
                    record = _annotate(src, out, meta, from_labels, sheets, redraw, previous.get(src.name))
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - one image must not stop the others
                record = AnnotatedImage(src.name, src.origin, refused=describe_error(exc))
                log.warning("%s refused: %s", src.name, record.refused)
            if not keep_arrays:
                record.image = record.points = record.cells = None
            run.records.append(record)
    except KeyboardInterrupt:
        run.interrupted = "SIGINT"
    _write_tables(out, run, previous, from_labels)
    return run


def _stored(out: Path, name: str) -> bool:
    return read_annotation_meta(out, name) is not None and read_cells(out, name) is not None


def _read_back(out: Path, src: ImageSource) -> AnnotatedImage:
    """The record of an image annotated by an earlier run in ``out``."""
    meta = read_annotation_meta(out, src.name) or {}
    points, foreground = read_annotation(out, src.name)
    cells = read_cells(out, src.name)
    quality = annotation_report(points, foreground, cells=cells, name=src.name)
    return AnnotatedImage(
        src.name,
        src.origin,
        outputs=annotation_files(out, src.name),
        diameter=meta.get("diameter"),
        diameter_estimated=bool(meta.get("diameter_estimated")),
        auto_index=int(meta.get("auto_index", -1)),
        chosen_index=int(meta.get("chosen_index", -1)),
        quality=quality,
        reused=True,
        image=src.load().image,
        points=points,
        cells=cells,
    )


def _annotate(
    src: ImageSource,
    out: Path,
    meta: dict[str, Any],
    from_labels: bool,
    sheets: str | os.PathLike | None,
    redraw: CellRedraw | None,
    previous: dict | None,
) -> AnnotatedImage:
    """Annotate, check and write one image (its record; InputError when it is refused)."""
    loaded = src.load()
    if from_labels:
        return _from_labels(src, loaded, out, meta)
    image = loaded.image
    used, estimated = check_stains(image, meta["diameter"])
    kept = previous is not None and previous["chosen_index"] != previous["auto_index"]
    ann = annotate_image(
        image[0],
        image[1],
        diameter=used,
        override=previous["chosen_index"] if kept else None,
        rule=meta["rule"],
        cells=redraw is None or redraw.needs_machine_cells,
    )
    cells, extra = (ann.cells, {}) if redraw is None else redraw(image[:2], ann.cells)
    if cells is None or cells.max() == 0:
        raise InputError("the annotation found no cells")
    choice = {"auto_index": ann.auto_index, "chosen_index": ann.chosen_index}
    info = {"thresholds": list(ann.thresholds), "scores": ann.scores.round(4).tolist()}
    full = {**meta, "diameter": used, "diameter_estimated": estimated, **extra, "source": "machine", **choice, **info}
    write_annotation(out, src.name, ann.points, ann.foreground, full, candidates=ann.candidates, cells=cells)
    outputs = annotation_files(out, src.name)
    if sheets is not None:
        sheet = Path(sheets) / f"{src.name.replace('/', '__')}.png"
        write_contact_sheet(
            sheet, image[:2], ann.candidates, ann.points, ann.chosen_index, auto=ann.auto_index, cells=cells
        )
        outputs.append(sheet)
    quality = annotation_report(
        ann.points, ann.foreground, gt_nuclei=loaded.gt_nuclei, gt_cells=loaded.gt_cells, cells=cells, name=src.name
    )
    return AnnotatedImage(
        src.name,
        src.origin,
        outputs=outputs,
        diameter=used,
        diameter_estimated=estimated,
        threshold=ann.thresholds[ann.chosen_index],
        kept_choice=kept,
        quality=quality,
        image=image[:2],
        points=ann.points,
        cells=cells,
        **choice,
    )


def _from_labels(src: ImageSource, loaded: SourceImage, out: Path, meta: dict[str, Any]) -> AnnotatedImage:
    """Points and foreground derived from the labels (no stain is read, so no refusal rule applies)."""
    points, foreground = weak_from_labels(loaded.labels)
    write_annotation(
        out, src.name, points, foreground, {**meta, "diameter_estimated": meta["diameter"] is None, "source": "labels"}
    )
    quality = annotation_report(points, foreground, gt_nuclei=loaded.gt_nuclei, gt_cells=loaded.gt_cells, name=src.name)
    return AnnotatedImage(
        src.name,
        src.origin,
        outputs=annotation_files(out, src.name),
        diameter=meta["diameter"],
        diameter_estimated=meta["diameter"] is None,
        quality=quality,
        image=loaded.image,
        points=points,
    )


def _write_tables(out: Path, run: FolderAnnotation, previous: dict[str, dict], from_labels: bool) -> None:
    """``choices.csv`` (earlier rows kept, this run's replaced) and ``report.csv``/``report.json``."""
    done = run.annotated
    if not from_labels and run.records:
        rows = {**previous, **{r.name: r.choice_row() for r in done}}
        write_choices(out / "choices.csv", list(rows.values()))
    if not done:
        return
    reports = [r.quality for r in done]
    keys = list(reports[0])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(reports)

    atomic_write(out / "report.csv", write, overwrite=True)
    atomic_write(out / "report.json", json.dumps(reports, indent=1), overwrite=True)

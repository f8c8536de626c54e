"""``lociseg annotate``: machine-made points + foreground for weak training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ._common import OutputLock, check_new, describe_error, exit_if_failed, prepare_out_dir, unique_names


def _channel(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _sources(inputs: list[str], nucleus: str, cytoplasm: str, gt: bool, from_labels: bool):
    """Yield (name, loader) pairs; loader() -> (image (2, H, W), gt_nuclei, gt_cells, labels)."""
    from ..data import DATASETS, load_dataset, parse_spec
    from ..errors import ConfigError
    from ..io import read_image
    from ..io.files import expand_inputs, image_stem

    chans = [_channel(nucleus), _channel(cytoplasm)]
    if len(inputs) == 1 and (parse_spec(inputs[0])[0].lower() in DATASETS or _is_dataset_folder(inputs[0])):
        spec = inputs[0]
        ds = load_dataset(spec, channels=chans)
        base = parse_spec(spec)[0].lower()
        nuclei_ds = None
        if gt and base == "bbbc018":
            _, _, split = parse_spec(spec)
            nuclei_ds = load_dataset("bbbc018:nuclei", split=split, channels=chans)
        for name in ds.names:

            def load(name=name):
                s = ds[name]
                labels = s.labels
                if (gt or from_labels) and labels is None:
                    raise ConfigError(f"{ds.name} has no labels for image {name!r} (--gt/--from-labels)")
                nuc = None
                if gt:
                    nuc = nuclei_ds[name].labels if nuclei_ds is not None else labels
                return s.image, nuc, labels if gt else None, labels

            yield name, load
        return
    if gt or from_labels:
        raise ConfigError("--gt and --from-labels need a labelled data set spec (e.g. bbbc018@train), not image files")
    for path in expand_inputs(inputs):

        def load(path=path):
            return read_image(path, channels=chans), None, None, None

        yield image_stem(path, suffixes=()), load


def _is_dataset_folder(item: str) -> bool:
    p = Path(item)
    return p.is_dir() and ((p / "images").is_dir() or any(p.glob("*_img.*")))


def main(
    inputs: list[str] = typer.Argument(
        ..., help="Image files, folders, globs, or one data set spec (bbbc018@train, cellprofiler-human)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder for points, foreground, contact sheets, choices.csv, report."
    ),
    nucleus: str = typer.Option("DNA", "--nucleus", "-n", help="Nuclear channel, by name or index."),
    cytoplasm: str = typer.Option(
        "actin", "--cytoplasm", "-c", help="Cytoplasm / cell-body channel, by name or index."
    ),
    diameter: float | None = typer.Option(
        None,
        "--diameter",
        "-d",
        help="Annotation scale as a cell diameter in px (default: measured per image from the nuclear stain; 23 is BBBC018's).",
    ),
    rule: str = typer.Option(
        "level",
        "--rule",
        help="Automatic foreground choice: 'level' (the stain's own level) or 'points' (the older BBBC018-tuned rule).",
    ),
    from_labels: bool = typer.Option(
        False, "--from-labels", help="Derive points/foreground from the data set's labels (benchmarking)."
    ),
    gt: bool = typer.Option(False, "--gt", help="Score the annotations against the data set's labels (report.csv)."),
    sheets: bool = typer.Option(True, "--sheets/--no-sheets", help="Write a contact-sheet PNG per image."),
    cells_from: str | None = typer.Option(
        None,
        "--cells-from",
        help="Self-training: a model trained on these images' machine cells re-draws the cells (model folder or name).",
    ),
    keep_missed: bool = typer.Option(
        True, "--keep-missed/--no-keep-missed", help="With --cells-from: keep the machine cells the model missed."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the annotations of an earlier run in --out (edited choices in choices.csv are kept).",
    ),
) -> None:
    """Make weak annotations: points from the nuclear stain, foreground from the cytoplasm stain.

    Points: difference of Gaussians on the nuclear channel. Foreground: five
    graph-cut candidates of the cytoplasm channel; one is chosen automatically
    (most points inside, least foreground far from points or in point-less
    pieces). Cells: the chosen foreground split among the points along the
    nuclei and the cytoplasm edges (pseudo-labels, <name>.cells.tif). Look
    at sheets/<name>.png, edit chosen_index in choices.csv to override, and
    re-run the same command with --overwrite: edited choices are kept.
    Example: lociseg annotate bbbc018@train --out ann_train --gt
    """
    import numpy as np
    from tqdm import tqdm

    from ..annotate import (
        RULES,
        annotate_image,
        annotation_report,
        estimate_cell_scale,
        read_choices,
        weak_from_labels,
        write_annotation,
        write_choices,
        write_contact_sheet,
    )
    from ..errors import InputError
    from ..predict.selftrain import cells_from_model

    if rule not in RULES:
        from ..errors import ConfigError

        raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    if diameter is not None and not (0 < diameter < float("inf")):
        from ..errors import ConfigError

        raise ConfigError(f"--diameter must be a positive, finite number of pixels, got {diameter}")
    sources = list(_sources(inputs, nucleus, cytoplasm, gt, from_labels))
    names, notes = unique_names([n for n, _ in sources], [n for n, _ in sources])
    sources = [(n, load) for n, (_, load) in zip(names, sources)]
    # an earlier run's outputs are replaced only with --overwrite; checked before any work
    check_new(
        [
            out / "choices.csv",
            out / "report.csv",
            out / "report.json",
            *(out / f"{n.replace('/', '__')}{e}" for n in names for e in (".points.csv", ".meta.json")),
        ],
        overwrite,
    )
    segmenter, model_channels = _refiner(cells_from, nucleus, cytoplasm, from_labels)
    prepare_out_dir(out)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    with OutputLock(out, "lociseg annotate"):
        previous = read_choices(out / "choices.csv")
        rows: dict[str, dict] = {name: row for name, row in previous.items()}
        reports: list[dict] = []
        failures: dict[str, str] = {}
        kept = 0
        for name, load in tqdm(sources, desc="annotate", unit="image", disable=None):
            try:
                image, gt_nuc, gt_cells, labels = load()
                if image.shape[0] < 2 and not from_labels:
                    raise InputError(f"need a nuclear and a cytoplasm channel, got {image.shape[0]}")
                used, estimated = diameter, diameter is None
                if estimated and not from_labels:
                    used, _ = estimate_cell_scale(image[0])
                    if not np.isfinite(used):
                        raise InputError(
                            "no nuclei found in the nuclear channel (blank or wrong channel?); "
                            "pass --diameter to annotate anyway"
                        )
                meta = {
                    "nucleus": nucleus,
                    "cytoplasm": cytoplasm,
                    "diameter": used,
                    "diameter_estimated": estimated,
                    "rule": rule,
                }
                if from_labels:
                    points, fg = weak_from_labels(labels)
                    cells = None
                    write_annotation(out, name, points, fg, {**meta, "source": "labels"})
                    row = {"name": name, "chosen_index": -1, "auto_index": -1, "threshold": ""}
                else:
                    prev = previous.get(name)
                    override = prev["chosen_index"] if prev and prev["chosen_index"] != prev["auto_index"] else None
                    ann = annotate_image(
                        image[0],
                        image[1],
                        diameter=used,
                        override=override,
                        rule=rule,
                        cells=segmenter is None or keep_missed,
                    )
                    kept += override is not None
                    points, fg, cells = ann.points, ann.foreground, ann.cells
                    if segmenter is not None:
                        cells, used = cells_from_model(
                            image[:2], segmenter, channels=model_channels, fill=cells if keep_missed else None
                        )
                        meta.update(cells_from=segmenter.name, cells_diameter=round(used, 2), keep_missed=keep_missed)
                    write_annotation(
                        out,
                        name,
                        points,
                        fg,
                        {
                            **meta,
                            "source": "machine",
                            "auto_index": ann.auto_index,
                            "chosen_index": ann.chosen_index,
                            "thresholds": list(ann.thresholds),
                            "scores": ann.scores.round(4).tolist(),
                        },
                        candidates=ann.candidates,
                        cells=cells,
                    )
                    if sheets:
                        write_contact_sheet(
                            out / "sheets" / f"{name.replace('/', '__')}.png",
                            image[:2],
                            ann.candidates,
                            points,
                            ann.chosen_index,
                            auto=ann.auto_index,
                            cells=cells,
                        )
                    row = {
                        "name": name,
                        "chosen_index": ann.chosen_index,
                        "auto_index": ann.auto_index,
                        "threshold": ann.thresholds[ann.chosen_index],
                    }
                rep = annotation_report(points, fg, gt_nuclei=gt_nuc, gt_cells=gt_cells, cells=cells, name=name)
                row.update(
                    n_points=rep["n_points"],
                    fg_fraction=round(rep["fg_fraction"], 4),
                    points_inside=round(rep["points_inside"], 4),
                )
                rows[name] = row
                reports.append(rep)
            except Exception as exc:  # noqa: BLE001 - one image must not stop the others
                failures[name] = describe_error(exc)
        if not from_labels:
            write_choices(out / "choices.csv", list(rows.values()))
        _write_report(out, reports)
    typer.echo(
        f"{len(reports)} image(s) annotated ({kept} with a person's choice kept), {len(failures)} failed; "
        f"outputs in {out}"
    )
    if reports:
        keys = [
            k
            for k in (
                "n_points",
                "points_inside",
                "fg_fraction",
                "point_precision",
                "point_recall",
                "fg_iou",
                "cells_f1",
            )
            if k in reports[0]
        ]
        typer.echo("mean " + ", ".join(f"{k}={np.nanmean([r[k] for r in reports]):.3f}" for k in keys))
    exit_if_failed(failures)


def _refiner(cells_from: str | None, nucleus: str, cytoplasm: str, from_labels: bool) -> tuple[Any, list[int] | None]:
    """The model that re-draws the cells (``--cells-from``) and the indices of its channels in the
    (nucleus, cytoplasm) images, or (None, None); checked before any image is read.
    """
    if cells_from is None:
        return None, None
    from ..errors import ConfigError
    from ..predict.api import load_model

    if from_labels:
        raise ConfigError("--cells-from re-draws machine cells; it does not combine with --from-labels")
    seg = load_model(cells_from)
    if seg.spec.in_channels != 2:
        raise ConfigError(
            f"--cells-from model {seg.name} takes {seg.spec.in_channels} channel(s); it must take the "
            "nuclear and the cytoplasm stain"
        )
    # The model's channel names against --nucleus/--cytoplasm; unnamed, the order of lociseg's configs.
    names = [nucleus.strip().lower(), cytoplasm.strip().lower()]
    wanted = [str(c).strip().lower() for c in seg.spec.channels]
    if len(wanted) == 2 and all(c in names for c in wanted):
        return seg, [names.index(c) for c in wanted]
    typer.echo(
        f"note: model {seg.name} names its channels {list(seg.spec.channels)}, this run {names}; "
        "feeding it cytoplasm then nucleus, as lociseg's configs order them",
        err=True,
    )
    return seg, [1, 0]


def _write_report(out: Path, reports: list[dict]) -> None:
    import csv

    if not reports:
        return
    from ..io.files import atomic_write

    keys = list(reports[0])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(reports)

    atomic_write(out / "report.csv", write, overwrite=True)  # the command checked --overwrite
    atomic_write(out / "report.json", json.dumps(reports, indent=1), overwrite=True)

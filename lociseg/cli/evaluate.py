"""``lociseg evaluate``: score predicted label images against ground truth."""

from __future__ import annotations

import csv
import logging
import re
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ._common import check_new, debug_enabled, describe_error, exit_if_failed

log = logging.getLogger(__name__)

#: File endings read as label images (.csv is kept for score tables).
LABEL_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".npy", ".txt.gz", ".txt", ".gz")
#: Name endings dropped, besides lociseg.io.files.MASK_SUFFIXES, before matching gt and pred files by name.
NAME_SUFFIXES = ("_pred", "_gt", "_instances")
_MASK_DIRS = ("masks", "labels", "mask", "label")


def strip_name(filename: str) -> str:
    """The matching key of a file: name without the label ending and a ``_masks``-like suffix."""
    from ..io.files import MASK_SUFFIXES, image_stem

    return image_stem(filename, suffixes=(*MASK_SUFFIXES, *NAME_SUFFIXES))


def _is_label_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(LABEL_SUFFIXES)


def find_label_files(path: Path) -> dict[str, Path]:
    """Label files under ``path`` (or ``path`` itself) keyed by :func:`strip_name`.

    In a folder with a ``masks/`` (or ``labels/``) sub-folder only that is
    read; where some names end in ``_masks``/``_labels`` (Cellpose pairs)
    only those are. Sub-folders are searched recursively.
    """
    from ..errors import InputError
    from ..io.files import image_stem

    if path.is_file():
        return {strip_name(path.name): path}
    if not path.is_dir():
        from ..io.image import path_problem

        raise InputError(path_problem(path).replace("no such file", "no such file or folder"), path=path)
    for sub in _MASK_DIRS:
        if (path / sub).is_dir():
            path = path / sub
            break
    files = sorted(p for p in path.rglob("*") if _is_label_file(p))
    tagged = [p for p in files if strip_name(p.name) != image_stem(p.name, suffixes=())]
    if tagged and len(tagged) < len(files):
        files = tagged
    out: dict[str, Path] = {}
    for p in files:
        key = strip_name(p.name)
        if key in out:
            raise InputError(f"two label files for {key!r}: {out[key].name} and {p.relative_to(path)}", path=path)
        out[key] = p
    return out


def read_scores(path: Path, label_column: str = "label", score_column: str = "score") -> dict[int, float] | None:
    """Per-label scores from a ``lociseg segment`` cell table; None when absent or all empty."""
    from ..errors import InputError

    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if label_column not in fields or score_column not in fields:
            raise InputError(
                f"score table needs columns {label_column!r} and {score_column!r}, has {fields}", path=path
            )
        try:
            pairs = [(int(float(row[label_column])), float(row[score_column] or "nan")) for row in reader]
        except ValueError as exc:
            raise InputError(f"bad value in score table ({exc})", path=path) from None
    scores = {lab: s for lab, s in pairs}
    if not scores or all(np.isnan(s) for s in scores.values()):
        return None
    # a missing score ranks last rather than aborting the ranking
    return {lab: (0.0 if np.isnan(s) else s) for lab, s in scores.items()}


def _group_of(how: str, name: str, pred_path: Path | None, pred_root: Path, meta: dict) -> str | None:
    if how == "none":
        return None
    if how in ("auto", "folder"):
        if how == "auto" and meta.get("group"):
            return str(meta["group"])
        if pred_path is not None and pred_root.is_dir():
            rel = pred_path.parent.relative_to(pred_root)
            if rel.parts:
                return rel.as_posix()
        return None
    match = re.search(how, name)
    if not match:
        return "(other)"
    return match.group(1) if match.groups() else match.group(0)


def _gt_source(gt: str, root: Path | None) -> tuple[dict[str, Any], str]:
    """Ground truth as ``key -> Path or (dataset, name)`` and a description."""
    from ..data import DATASETS, load_dataset
    from ..data.load import parse_spec

    base = parse_spec(gt)[0]
    path = Path(gt)
    if base.lower() in DATASETS or (path.suffix.lower() == ".json" and path.is_file()):
        ds = load_dataset(gt, root=root)
        return {strip_name(n): (ds, n) for n in ds.names}, ds.name
    return find_label_files(path), str(path)


def main(
    gt: str = typer.Option(
        ...,
        "--gt",
        help="Ground truth: folder or file of label images (TIFF/PNG/npy/txt), "
        "or a data set spec such as dsb2018-test, bbbc018:nuclei@test, koyuncu@test.",
    ),
    pred: Path = typer.Option(
        ...,
        "--pred",
        help="Predicted label images: a folder (matched to gt by file name, "
        "ignoring endings like _masks, _labels, .ome) or one file.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write metrics JSON here (and a CSV beside it)."),
    score_column: str = typer.Option(
        "score",
        "--score-column",
        help="Score column of <name>.csv beside each "
        "prediction, used to rank objects for AP (all scores 1 without it).",
    ),
    label_column: str = typer.Option("label", "--label-column", help="Label column of the score tables."),
    group_by: str = typer.Option(
        "auto",
        "--group-by",
        help="'auto' (data set group, else pred sub-folder), "
        "'folder', 'none', or a regular expression on the image name (first group).",
    ),
    images: bool | None = typer.Option(
        None, "--images/--no-images", help="Per-image rows in the printed table (default: when at most 30 images)."
    ),
    root: Path | None = typer.Option(None, "--root", help="Data root for named data sets."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing metrics JSON/CSV."),
) -> int:
    r"""Score predicted label images against ground truth: F1, AP50, AP75, mAP, AFNR, PQ, ...

    Pairs are matched by file name. Objects are matched one-to-one at IoU
    0.50:0.05:0.95; counts are pooled over images for the ALL (sum) row and
    averaged per image for ALL (mean). Examples:
    lociseg evaluate --gt dsb2018-test --pred out/ -o metrics.json ;
    lociseg evaluate --gt masks/ --pred pred/ --group-by '^(\w+?)_'
    """
    from tqdm import tqdm

    from ..errors import ConfigError, InputError, LociError
    from ..io import read_labels
    from ..io.files import atomic_write, image_stem
    from ..metrics import evaluate_image, report_from_results

    if group_by not in ("auto", "folder", "none"):
        try:
            re.compile(group_by)
        except re.error as exc:
            raise ConfigError(f"--group-by: not a valid regular expression ({exc})") from None
    if out is not None and (out.is_dir() or out.suffix.lower() != ".json"):
        raise ConfigError("--out must be a .json file path (the CSV is written beside it)", path=out)
    if not (pred.exists() or pred.is_symlink()):
        raise InputError("--pred: no such file or folder", path=pred)
    if out is not None:
        check_new([out, out.with_suffix(".csv")], overwrite)  # before any scoring
    gt_items, gt_desc = _gt_source(gt, root)
    pred_files = find_label_files(pred)
    if pred.is_file() and len(gt_items) == 1:
        pred_files = {next(iter(gt_items)): pred}  # one file each: names need not agree
    keys = [k for k in gt_items if k in pred_files]
    missing_pred = sorted(set(gt_items) - set(pred_files))
    missing_gt = sorted(set(pred_files) - set(gt_items))
    results, failures = [], []
    for key in tqdm(keys, desc="evaluate", unit="image", disable=None):
        item, pred_path = gt_items[key], pred_files[key]
        try:
            meta: dict = {}
            if isinstance(item, tuple):
                sample = item[0][item[1]]
                if sample.labels is None:
                    raise InputError("ground truth has no labels", path=sample.meta.get("path") or item[1])
                gt_labels, meta = sample.labels, sample.meta
            else:
                gt_labels = read_labels(item)
            pred_labels = read_labels(pred_path)
            if gt_labels.shape != pred_labels.shape:
                raise InputError(
                    f"shape {pred_labels.shape} differs from ground truth {gt_labels.shape}", path=pred_path
                )
            csv_path = pred_path.with_name(image_stem(pred_path.name, suffixes=()) + ".csv")
            scores = read_scores(csv_path, label_column, score_column)
            if scores is not None:
                present = np.unique(pred_labels[pred_labels > 0])
                absent = [int(v) for v in present if int(v) not in scores]
                if absent:
                    raise InputError(f"score table lacks label(s) {absent[:5]}", path=csv_path)
            r = evaluate_image(gt_labels, pred_labels, scores)
        except Exception as exc:  # noqa: BLE001 - one pair must not stop the others
            if debug_enabled() and not isinstance(exc, LociError):
                traceback.print_exception(exc)
            failures.append(str(exc) if isinstance(exc, LociError) else f"{pred_path}: {describe_error(exc)}")
            continue
        r["name"] = key
        r["group"] = _group_of(group_by, key, pred_path, pred, meta)
        r["scored"] = scores is not None
        results.append(r)

    if not results:
        if len(keys) == 1 and len(failures) == 1:
            raise InputError(failures[0])  # the one pair's own problem says it all
        for msg in failures:
            typer.echo(f"failed: {msg}", err=True)
        raise InputError(
            f"no prediction could be scored against {gt_desc} ({len(gt_items)} gt, "
            f"{len(pred_files)} pred files, {len(keys)} matched by name)",
            path=pred,
        )
    report = report_from_results(results)
    show_images = images if images is not None else len(results) <= 30
    typer.echo(report.table(images=show_images))
    unscored = sum(not r["scored"] for r in results)
    if unscored:
        typer.echo(f"note: {unscored} of {len(results)} predictions have no score table; their objects rank as score 1")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, report.to_json, overwrite=overwrite)
        atomic_write(out.with_suffix(".csv"), report.to_csv, overwrite=overwrite)
        typer.echo(f"wrote {out} and {out.with_suffix('.csv')}")
    for label, names in (("no prediction for", missing_pred), ("no ground truth for", missing_gt)):
        if names:
            typer.echo(
                f"{label} {len(names)} image(s): {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}", err=True
            )
    exit_if_failed(failures)
    return 0

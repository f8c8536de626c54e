"""Score predicted label images on disk against ground truth: the library behind ``lociseg evaluate``.

The ground truth is a folder or file of label images, or a data set spec;
predictions are matched to it by file name (:func:`strip_name`), each pair is
scored with :func:`lociseg.metrics.evaluate_image` (objects ranked by the
scores of a ``lociseg segment`` cell table beside the prediction, when there
is one) and the results are pooled into a :class:`lociseg.metrics.Report`.
"""

from __future__ import annotations

import csv
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import io  # io.read_labels looked up at call time (tests stand in a reader there)
from ..batch import check_new
from ..errors import ConfigError, InputError, LociError, describe_error
from ..io.files import MASK_SUFFIXES, atomic_write, image_stem
from ..io.image import path_problem
from ..metrics import Report, evaluate_image, report_from_results
from .load import DATASETS, load_dataset, parse_spec

#: File endings read as label images (.csv is kept for score tables).
LABEL_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".npy", ".txt.gz", ".txt", ".gz")
#: Name endings dropped, besides lociseg.io.files.MASK_SUFFIXES, before matching gt and pred files by name.
NAME_SUFFIXES = ("_pred", "_gt", "_instances")
_MASK_DIRS = ("masks", "labels", "mask", "label")
#: ``group_by`` values that are not a regular expression.
GROUPINGS = ("auto", "folder", "none")
#: Up to this many images, the printed table has a row per image by default.
MAX_IMAGE_ROWS = 30


def strip_name(filename: str) -> str:
    """The matching key of a file: name without the label ending and a ``_masks``-like suffix."""
    return image_stem(filename, suffixes=(*MASK_SUFFIXES, *NAME_SUFFIXES))


def _is_label_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(LABEL_SUFFIXES)


def find_label_files(path: Path) -> dict[str, Path]:
    """Label files under ``path`` (or ``path`` itself) keyed by :func:`strip_name`.

    In a folder with a ``masks/`` (or ``labels/``) sub-folder only that is
    read; where some names end in ``_masks``/``_labels`` (Cellpose pairs)
    only those are. Sub-folders are searched recursively.
    """
    if path.is_file():
        return {strip_name(path.name): path}
    if not path.is_dir():
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
    base = parse_spec(gt)[0]
    path = Path(gt)
    if base.lower() in DATASETS or (path.suffix.lower() == ".json" and path.is_file()):
        ds = load_dataset(gt, root=root)
        return {strip_name(n): (ds, n) for n in ds.names}, ds.name
    return find_label_files(path), str(path)


def _score_pair(item: Any, pred_path: Path, label_column: str, score_column: str) -> tuple[dict[str, Any], dict, bool]:
    """:func:`evaluate_image` of one pair, the ground truth's metadata and whether a score table ranked it."""
    meta: dict = {}
    if isinstance(item, tuple):
        sample = item[0][item[1]]
        if sample.labels is None:
            raise InputError("ground truth has no labels", path=sample.meta.get("path") or item[1])
        gt_labels, meta = sample.labels, sample.meta
    else:
        gt_labels = io.read_labels(item)
    pred_labels = io.read_labels(pred_path)
    if gt_labels.shape != pred_labels.shape:
        raise InputError(f"shape {pred_labels.shape} differs from ground truth {gt_labels.shape}", path=pred_path)
    csv_path = pred_path.with_name(image_stem(pred_path.name, suffixes=()) + ".csv")
    scores = read_scores(csv_path, label_column, score_column)
    if scores is not None:
        present = np.unique(pred_labels[pred_labels > 0])
        absent = [int(v) for v in present if int(v) not in scores]
        if absent:
            raise InputError(f"score table lacks label(s) {absent[:5]}", path=csv_path)
    return evaluate_image(gt_labels, pred_labels, scores), meta, scores is not None


@dataclass
class FolderScores:
    """What :func:`evaluate_folder` scored.

    Attributes
    ----------
    images : list of dict
        :func:`~lociseg.metrics.evaluate_image` of each scored pair, with
        ``name``, ``group`` and ``scored`` (ranked by a score table).
    failures : list of str
        One line per pair that could not be scored.
    gt : str
        The ground truth, described.
    n_gt, n_pred : int
        Ground-truth and prediction files found.
    matched : int
        Pairs matched by name.
    missing_pred, missing_gt : list of str
        Names with no prediction, and names with no ground truth.
    """

    images: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    gt: str = ""
    n_gt: int = 0
    n_pred: int = 0
    matched: int = 0
    missing_pred: list[str] = field(default_factory=list)
    missing_gt: list[str] = field(default_factory=list)

    @property
    def unscored(self) -> int:
        """Scored pairs whose prediction has no score table (its objects rank as score 1)."""
        return sum(not r["scored"] for r in self.images)

    def report(self) -> Report:
        """The images pooled per group and overall."""
        return report_from_results(self.images)

    def nothing_scored(self, pred: Path) -> InputError:
        """The error when no pair could be scored: the one pair's own problem, or the counts."""
        if self.matched == 1 and len(self.failures) == 1:
            return InputError(self.failures[0])
        return InputError(
            f"no prediction could be scored against {self.gt} ({self.n_gt} gt, "
            f"{self.n_pred} pred files, {self.matched} matched by name)",
            path=pred,
        )


def check_evaluate_options(pred: Path, out: Path | None, group_by: str, overwrite: bool) -> None:
    """Refuse a bad ``group_by``, ``out`` path or ``pred`` (and an ``out`` that exists) before any scoring."""
    if group_by not in GROUPINGS:
        try:
            re.compile(group_by)
        except re.error as exc:
            raise ConfigError(f"--group-by: not a valid regular expression ({exc})") from None
    if out is not None and (out.is_dir() or out.suffix.lower() != ".json"):
        raise ConfigError("--out must be a .json file path (the CSV is written beside it)", path=out)
    if not (pred.exists() or pred.is_symlink()):
        raise InputError("--pred: no such file or folder", path=pred)
    if out is not None:
        check_new([out, out.with_suffix(".csv")], overwrite)


def evaluate_folder(
    gt: str,
    pred: Path,
    *,
    root: Path | None = None,
    group_by: str = "auto",
    label_column: str = "label",
    score_column: str = "score",
    debug: bool = False,
) -> FolderScores:
    """Score every prediction under ``pred`` against its namesake in ``gt``; one bad pair never stops the others.

    Parameters
    ----------
    gt : str
        Folder or file of label images, or a data set spec (``dsb2018-test``).
    pred : Path
        Folder of predicted label images (or one file: then matched to a
        one-image ``gt`` whatever its name).
    root : Path, optional
        Data root for named data sets.
    group_by : str
        ``auto`` (the data set's group, else the prediction's sub-folder),
        ``folder``, ``none``, or a regular expression on the name (its first group).
    label_column, score_column : str
        Columns of the ``<name>.csv`` score table beside each prediction.
    debug : bool
        Print the traceback of a failure that is not lociseg's own one-line error.

    Returns
    -------
    FolderScores
    """
    gt_items, gt_desc = _gt_source(gt, root)
    pred_files = find_label_files(pred)
    if pred.is_file() and len(gt_items) == 1:
        pred_files = {next(iter(gt_items)): pred}  # one file each: names need not agree
    keys = [k for k in gt_items if k in pred_files]
    scores = FolderScores(
        gt=gt_desc,
        n_gt=len(gt_items),
        n_pred=len(pred_files),
        matched=len(keys),
        missing_pred=sorted(set(gt_items) - set(pred_files)),
        missing_gt=sorted(set(pred_files) - set(gt_items)),
    )
    for key in tqdm(keys, desc="evaluate", unit="image", disable=None):
        pred_path = pred_files[key]
        try:
            r, meta, scored = _score_pair(gt_items[key], pred_path, label_column, score_column)
        except Exception as exc:  # noqa: BLE001 - one pair must not stop the others
            if debug and not isinstance(exc, LociError):
                traceback.print_exception(exc)
            scores.failures.append(str(exc) if isinstance(exc, LociError) else f"{pred_path}: {describe_error(exc)}")
            continue
        r["name"] = key
        r["group"] = _group_of(group_by, key, pred_path, pred, meta)
        r["scored"] = scored
        scores.images.append(r)
    return scores


def write_report(report: Report, out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``report`` as ``out`` (JSON) and the CSV beside it; returns both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, report.to_json, overwrite=overwrite)
    atomic_write(out.with_suffix(".csv"), report.to_csv, overwrite=overwrite)
    return out, out.with_suffix(".csv")

"""Per-image evaluation, pooling over images, and reports (JSON, CSV, text table)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .matching import (
    DEFAULT_THRESHOLDS,
    MatchResult,
    _check_pair,
    _match_overlaps,
    compute_overlaps,
    drop_unlabelled,
)
from .ranked import _ranked_from_overlaps, average_precision_from_detections

__all__ = ["Report", "aggregate", "evaluate", "evaluate_image", "evaluate_pairs", "report_from_results", "SCALAR_KEYS"]

#: Flat scalar keys of :func:`evaluate_image` and :func:`aggregate` results.
SCALAR_KEYS = (
    "n_gt",
    "n_pred",
    "f1_50",
    "precision_50",
    "recall_50",
    "dsb_ap_50",
    "dsb_map",
    "ap50",
    "ap75",
    "map",
    "fnr_50",
    "afnr",
    "pq_50",
    "fg_iou",
    "mean_matched_iou_50",
)
_PER_T = ("tp", "fp", "fn", "precision", "recall", "f1", "dsb_ap", "pq", "fnr", "sum_iou", "ap")


def _flat(m: MatchResult, ranked: dict, fg_iou: float) -> dict[str, Any]:
    k = int(np.flatnonzero(np.isclose(m.thresholds, 0.5))[0]) if np.isclose(m.thresholds, 0.5).any() else None
    pick = (lambda a: float(a[k])) if k is not None else (lambda a: float("nan"))
    return {
        "n_gt": m.n_gt,
        "n_pred": m.n_pred,
        "f1_50": pick(m.f1),
        "precision_50": pick(m.precision),
        "recall_50": pick(m.recall),
        "dsb_ap_50": pick(m.dsb_ap),
        "dsb_map": float(m.dsb_ap.mean()),
        "ap50": float(ranked["ap50"]),
        "ap75": float(ranked["ap75"]),
        "map": float(ranked["map"]),
        "fnr_50": pick(m.fnr),
        "afnr": float(m.fnr.mean()),
        "pq_50": pick(m.pq),
        "fg_iou": float(fg_iou),
        "mean_matched_iou_50": float(m.mean_matched_iou),
    }


def evaluate_image(
    gt: np.ndarray,
    pred: np.ndarray,
    scores=None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    partial_labels: bool = False,
) -> dict[str, Any]:
    """All instance metrics of one predicted label image.

    Parameters
    ----------
    gt, pred : (H, W) int ndarray
        Instance label images, 0 = background.
    scores : None, mapping or ndarray, optional
        Per-object confidence for ranked AP (see
        :func:`~lociseg.metrics.ranked_average_precision`); None = all 1.
    thresholds : sequence of float, optional
        IoU thresholds (default 0.50:0.05:0.95); ``*_50`` keys need 0.5 among them.
    partial_labels : bool, optional
        ``gt`` labels only some objects: predictions lying mostly on
        unlabelled pixels are not scored (:func:`~lociseg.metrics.drop_unlabelled`).

    Returns
    -------
    dict
        Scalars under :data:`SCALAR_KEYS`; ``per_threshold`` (arrays of
        tp, fp, fn, precision, recall, f1, dsb_ap, pq, fnr, sum_iou, ap and
        the thresholds); ``detections`` (scores and per-threshold TP flags,
        used by :func:`aggregate` to rank detections across images);
        ``fg_counts`` (foreground intersection and union pixels).
    """
    gt, pred = _check_pair(gt, pred)
    if partial_labels:
        pred = drop_unlabelled(gt, pred)
    thresholds = np.asarray(thresholds, float).ravel()
    ov = compute_overlaps(gt, pred)
    m = _match_overlaps(ov, thresholds)
    ranked, det_scores, det_tp = _ranked_from_overlaps(ov, scores, thresholds)
    a, b = gt > 0, pred > 0
    inter, union = int(np.count_nonzero(a & b)), int(np.count_nonzero(a | b))
    out = _flat(m, ranked, 1.0 if union == 0 else inter / union)
    out["per_threshold"] = {
        "thresholds": thresholds,
        **{k: getattr(m, k) for k in _PER_T if k != "ap"},
        "ap": ranked["ap"],
    }
    extra = det_tp.shape[1] - len(thresholds)  # 0.5 / 0.75 columns added for ap50 / ap75
    out["detections"] = {
        "scores": det_scores,
        "tp": det_tp,
        "extra_thresholds": [t for t in (0.5, 0.75) if not np.isclose(thresholds, t).any()][:extra],
    }
    out["fg_counts"] = {"intersection": inter, "union": union}
    return out


def aggregate(results: list[dict[str, Any]], *, by: str = "sum") -> dict[str, Any]:
    """Pool the :func:`evaluate_image` results of several images.

    Parameters
    ----------
    results : list of dict
        Results of :func:`evaluate_image`, all with the same thresholds.
    by : {"sum", "mean"}
        ``"sum"``: add TP/FP/FN over images and recompute the scores from the
        sums (each object weighs the same); ranked AP uses the detections of
        all images ranked together (as COCO does); ``fg_iou`` is pooled
        intersection over pooled union. ``"mean"``: average each image's
        scores (each image weighs the same).

    Returns
    -------
    dict
        The scalar keys of :func:`evaluate_image` plus ``n_images``;
        ``n_gt`` and ``n_pred`` are totals either way.
    """
    if by not in ("sum", "mean"):
        raise ValueError(f"by must be 'sum' or 'mean', got {by!r}")
    if not results:
        raise ValueError("nothing to aggregate")
    thresholds = np.asarray(results[0]["per_threshold"]["thresholds"], float)
    n_gt = sum(int(r["n_gt"]) for r in results)
    n_pred = sum(int(r["n_pred"]) for r in results)
    if by == "mean":
        out = {k: float(np.mean([r[k] for r in results])) for k in SCALAR_KEYS}
        out.update(n_gt=n_gt, n_pred=n_pred, n_images=len(results))
        out["per_threshold"] = {
            "thresholds": thresholds,
            **{k: np.mean([np.asarray(r["per_threshold"][k], float) for r in results], axis=0) for k in _PER_T},
        }
        return out
    tp = np.sum([r["per_threshold"]["tp"] for r in results], axis=0)
    sum_iou = np.sum([r["per_threshold"]["sum_iou"] for r in results], axis=0)
    k50 = np.flatnonzero(np.isclose(thresholds, 0.5))
    tp50 = int(tp[k50[0]]) if len(k50) else 0
    m = MatchResult.from_counts(
        thresholds, tp, n_gt, n_pred, sum_iou, tp50=tp50, sum_iou50=float(sum_iou[k50[0]]) if len(k50) else 0.0
    )
    scores = np.concatenate([r["detections"]["scores"] for r in results])
    det_tp = np.concatenate([r["detections"]["tp"] for r in results])
    all_t = np.concatenate([thresholds, results[0]["detections"]["extra_thresholds"]]).astype(float)
    ap = np.array([average_precision_from_detections(scores, det_tp[:, k], n_gt) for k in range(len(all_t))])
    at = {t: float(ap[np.flatnonzero(np.isclose(all_t, t))[0]]) for t in (0.5, 0.75)}
    ranked = {"ap50": at[0.5], "ap75": at[0.75], "map": float(ap[: len(thresholds)].mean())}
    inter = sum(r["fg_counts"]["intersection"] for r in results)
    union = sum(r["fg_counts"]["union"] for r in results)
    out = _flat(m, ranked, 1.0 if union == 0 else inter / union)
    out["n_images"] = len(results)
    out["per_threshold"] = {
        "thresholds": thresholds,
        **{k: getattr(m, k) for k in _PER_T if k != "ap"},
        "ap": ap[: len(thresholds)],
    }
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "detections"}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN
    return value


#: Columns of :meth:`Report.table` (key, header, format).
TABLE_COLUMNS = (
    ("f1_50", "F1", "{:.3f}"),
    ("ap50", "AP50", "{:.3f}"),
    ("ap75", "AP75", "{:.3f}"),
    ("map", "mAP", "{:.3f}"),
    ("afnr", "AFNR", "{:.3f}"),
    ("n_gt", "n_gt", "{:d}"),
    ("n_pred", "n_pred", "{:d}"),
)


@dataclass
class Report:
    """Per-image results with pooled results per group and overall.

    Attributes
    ----------
    images : list of dict
        ``name``, ``group`` and the :func:`evaluate_image` result of each image.
    groups : dict
        Group name -> :func:`aggregate` (``by="sum"``) of its images.
    overall : dict
        ``{"sum": ..., "mean": ...}`` over all images.
    thresholds : ndarray
    """

    images: list[dict[str, Any]]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    overall: dict[str, dict[str, Any]] = field(default_factory=dict)
    thresholds: np.ndarray = field(default_factory=lambda: DEFAULT_THRESHOLDS.copy())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (per-detection arrays are left out)."""
        return _jsonable(
            {"thresholds": self.thresholds, "overall": self.overall, "groups": self.groups, "images": self.images}
        )

    def to_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as indented JSON."""
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows: every image, every group (pooled), then all images (pooled and mean)."""
        rows = [
            {"level": "image", "name": r["name"], "group": r.get("group") or "", **{k: r[k] for k in SCALAR_KEYS}}
            for r in self.images
        ]
        if len(self.groups) > 1:
            rows += [
                {"level": "group", "name": g, "group": g, **{k: a[k] for k in SCALAR_KEYS}}
                for g, a in self.groups.items()
            ]
        for how, a in self.overall.items():
            rows.append({"level": f"all ({how})", "name": "all", "group": "", **{k: a[k] for k in SCALAR_KEYS}})
        return rows

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`rows` as CSV, one column per scalar metric."""
        rows = self.rows()
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["level", "name", "group", *SCALAR_KEYS])
            writer.writeheader()
            writer.writerows(rows)

    def table(self, *, images: bool = True) -> str:
        """Plain-text table: rows per image (optional), group and overall; F1 and AFNR at IoU 0.5 / averaged."""
        rows = [r for r in self.rows() if images or r["level"] != "image"]
        names = [r["name"] if r["level"] != "group" else f"[{r['name']}]" for r in rows]
        names = [n if not r["level"].startswith("all") else f"ALL {r['level'][4:]}" for n, r in zip(names, rows)]
        width = max([len("image / group")] + [len(n) for n in names])
        head = f"{'image / group':<{width}}" + "".join(f" {h:>7}" for _, h, _ in TABLE_COLUMNS)
        lines = [head, "-" * len(head)]
        for n, r in zip(names, rows):
            cells = []
            for key, _, fmt in TABLE_COLUMNS:
                v = r[key]
                cells.append(
                    " " * 6 + "-"
                    if v is None or (isinstance(v, float) and not np.isfinite(v))
                    else fmt.format(int(v) if fmt == "{:d}" else float(v)).rjust(7)
                )
            lines.append(f"{n:<{width}}" + "".join(f" {c}" for c in cells))
        return "\n".join(lines)


def evaluate_pairs(
    gt_list: Sequence[np.ndarray],
    pred_list: Sequence[np.ndarray],
    scores_list: Sequence[Any] | None = None,
    names: Sequence[str] | None = None,
    groups: Sequence[str | None] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    partial_labels: bool = False,
) -> Report:
    """Evaluate many (gt, pred) label image pairs into a :class:`Report`.

    Parameters
    ----------
    gt_list, pred_list : sequence of (H, W) int ndarray
        Ground truth and predictions, pairwise of equal shape.
    scores_list : sequence, optional
        Per-image scores (see :func:`evaluate_image`); None entries = all 1.
    names : sequence of str, optional
        Image names (default ``"0"``, ``"1"``, ...).
    groups : sequence of str, optional
        Group (data set, phenotype, ...) of each image; pooled per group.
    thresholds : sequence of float, optional
    partial_labels : bool, optional
        The ground truth labels only some objects (see :func:`evaluate_image`).

    Returns
    -------
    Report
    """
    n = len(gt_list)
    if len(pred_list) != n:
        raise ValueError(f"{n} ground-truth images but {len(pred_list)} predictions")
    scores_list = [None] * n if scores_list is None else list(scores_list)
    names = [str(i) for i in range(n)] if names is None else [str(v) for v in names]
    groups = [None] * n if groups is None else list(groups)
    if not (len(scores_list) == len(names) == len(groups) == n):
        raise ValueError("scores_list, names and groups must have one entry per image")
    images = []
    for gt, pred, s, name, g in zip(gt_list, pred_list, scores_list, names, groups):
        images.append(
            {"name": name, "group": g, **evaluate_image(gt, pred, s, thresholds, partial_labels=partial_labels)}
        )
    return report_from_results(images, thresholds)


def report_from_results(images: list[dict[str, Any]], thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> Report:
    """Build a :class:`Report` from per-image results that carry ``name`` and ``group``."""
    by_group: dict[str, list[dict]] = {}
    for r in images:
        if r.get("group") is not None:
            by_group.setdefault(str(r["group"]), []).append(r)
    groups = {g: aggregate(rs, by="sum") for g, rs in by_group.items()}
    overall = {"sum": aggregate(images, by="sum"), "mean": aggregate(images, by="mean")} if images else {}
    return Report(images, groups, overall, np.asarray(thresholds, float))


def evaluate(
    gt: np.ndarray | Sequence[np.ndarray],
    pred: np.ndarray | Sequence[np.ndarray],
    scores: Any = None,
    *,
    names: Sequence[str] | None = None,
    groups: Sequence[str | None] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    partial_labels: bool = False,
) -> Report:
    """Evaluate one label image or a list of them (``lociseg.evaluate``).

    A single (H, W) ``gt``/``pred`` pair is treated as a list of one; see
    :func:`evaluate_pairs` for the parameters. Print ``report.table()``, or
    read ``report.overall["sum"]["f1_50"]`` and the other :data:`SCALAR_KEYS`.

    Examples
    --------
    >>> gt = np.zeros((8, 8), int); gt[:4, :4] = 1
    >>> evaluate(gt, gt).overall["sum"]["f1_50"]
    1.0
    """
    if isinstance(gt, np.ndarray) and gt.ndim == 2:
        gt, pred, scores = [gt], [pred], None if scores is None else [scores]
    return evaluate_pairs(
        gt, pred, scores, names=names, groups=groups, thresholds=thresholds, partial_labels=partial_labels
    )

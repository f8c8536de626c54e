"""Weak annotations from instance labels (for benchmarking) and annotation quality reports."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from ..metrics import evaluate_image

__all__ = ["weak_from_labels", "annotation_report", "gt_union", "partition_foreground"]


def weak_from_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and foreground from an instance label image.

    A point is each object's centroid, or, when the centroid falls outside the
    object (crescents, rings), the object pixel farthest from its border.

    Returns
    -------
    points : (N, 2) float32 (y, x), one per label in increasing id order
    foreground : (H, W) bool, the union of the objects
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return np.zeros((0, 2), np.float32), labels > 0
    cents = np.asarray(ndi.center_of_mass(np.ones_like(labels), labels, ids), np.float64).reshape(-1, 2)
    out = cents.copy()
    H, W = labels.shape
    iy = np.clip(np.round(cents[:, 0]).astype(int), 0, H - 1)
    ix = np.clip(np.round(cents[:, 1]).astype(int), 0, W - 1)
    bad = labels[iy, ix] != ids
    if bad.any():
        slices = ndi.find_objects(labels)
        for k in np.flatnonzero(bad):
            sl = slices[ids[k] - 1]
            obj = np.pad(labels[sl] == ids[k], 1)
            dist = ndi.distance_transform_edt(obj)
            y, x = np.unravel_index(np.argmax(dist), dist.shape)
            out[k] = (y - 1 + sl[0].start, x - 1 + sl[1].start)
    return out.astype(np.float32), labels > 0


def gt_union(labels: np.ndarray, *, close_gaps: bool = True) -> np.ndarray:
    """Union of GT objects; ``close_gaps`` fills the 1 px outline gaps between touching cells (BBBC018)."""
    fg = np.asarray(labels) > 0
    return fg | ndi.binary_closing(fg, np.ones((3, 3), bool)) if close_gaps else fg


def partition_foreground(foreground: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Split a foreground mask among points: each pixel goes to its nearest point (Voronoi).

    The label image that weak annotations imply with no training at all, and
    the partition the territory prior of the weak loss leans towards
    (:func:`lociseg.losses.territory.territory_loss`): a baseline for what the
    weak model learns beyond it.

    Parameters
    ----------
    foreground : (H, W) bool or 0/1 array
    points : (N, 2) array (y, x); points outside the image are clipped to it.

    Returns
    -------
    (H, W) int32 label image, label ``k + 1`` for ``points[k]`` (a label may
    be missing where two points fall on one pixel); 0 off the foreground.
    """
    fg = np.asarray(foreground) > 0
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(fg.shape, np.int32)
    seeds = np.zeros(fg.shape, np.int32)
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, fg.shape[0] - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, fg.shape[1] - 1)
    seeds[iy, ix] = np.arange(1, len(pts) + 1)
    return np.where(fg, expand_labels(seeds, distance=np.inf), 0).astype(np.int32)


def _match_points(points: np.ndarray, gt_labels: np.ndarray) -> int:
    """Points matched one-to-one to GT objects they fall inside (first point per object wins)."""
    H, W = gt_labels.shape
    iy = np.clip(np.round(points[:, 0]).astype(int), 0, H - 1)
    ix = np.clip(np.round(points[:, 1]).astype(int), 0, W - 1)
    hit = gt_labels[iy, ix]
    return int(len(np.unique(hit[hit > 0])))


def annotation_report(
    points: np.ndarray,
    foreground: np.ndarray,
    *,
    gt_nuclei: np.ndarray | None = None,
    gt_cells: np.ndarray | None = None,
    cells: np.ndarray | None = None,
    name: str = "",
) -> dict:
    """Quality figures of one image's weak annotation.

    Always: ``n_points``, ``fg_fraction`` (foreground pixels / image), and
    ``points_inside`` (fraction of points inside the foreground).
    With ``gt_nuclei`` (labels): ``n_gt``, ``point_precision``,
    ``point_recall`` (a point matches the GT nucleus it falls inside,
    one-to-one). With ``gt_cells`` (labels): ``fg_iou`` against their union
    (1 px gaps between touching cells closed), and with the machine-made
    ``cells`` too (:func:`~lociseg.annotate.propagate_cells`) their
    ``cells_f1`` (F1 at IoU 0.5) and ``cells_iou`` (mean IoU of the matched
    cells) against ``gt_cells``.
    """
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    fg = np.asarray(foreground, bool)
    H, W = fg.shape
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, H - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, W - 1)
    rep: dict = {
        "name": name,
        "n_points": int(len(pts)),
        "fg_fraction": float(fg.mean()),
        "points_inside": float(fg[iy, ix].mean()) if len(pts) else float("nan"),
    }
    if gt_nuclei is not None:
        gt = np.asarray(gt_nuclei)
        n_gt = int(len(np.unique(gt[gt > 0])))
        tp = _match_points(pts, gt) if len(pts) else 0
        rep.update(
            n_gt=n_gt,
            point_precision=tp / len(pts) if len(pts) else float("nan"),
            point_recall=tp / n_gt if n_gt else float("nan"),
        )
    if gt_cells is not None:
        u = gt_union(gt_cells)
        union = (u | fg).sum()
        rep["fg_iou"] = float((u & fg).sum() / union) if union else 1.0
        if cells is not None:
            scores = evaluate_image(np.asarray(gt_cells), np.asarray(cells), thresholds=(0.5, 0.75))
            rep.update(
                cells_f1=float(scores["f1_50"]),
                cells_f1_75=float(scores["per_threshold"]["f1"][1]),
                cells_iou=float(scores["mean_matched_iou_50"]),
            )
    return rep

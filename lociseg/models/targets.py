"""Training targets of LACSS: what a batch asks of the LPN and of the segmentation head.

:func:`lacss_targets` turns a batch (plus the detached LPN outputs, for the
switch to predicted locations) into :class:`LacssTargets`: the LPN score and
offset targets and, per image, the instances that get a mask loss and where
the segmentation head looks for them. :func:`window_targets` cuts the
supervised mask targets out of the label image once the head has placed its
windows. Nothing here is differentiable; the losses are in :mod:`lociseg.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from ..ops.windows import gather_windows
from .lpn import decode_locations, lpn_targets

__all__ = [
    "LacssTargets",
    "annotated_points",
    "grid_valid",
    "label_centroids",
    "lacss_targets",
    "match_locations",
    "subsample_instances",
    "window_targets",
]


def label_centroids(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids (N,) and centroids (N, 2) (y, x) of the objects of a label image."""
    flat = labels.reshape(-1)
    ids, inverse = torch.unique(flat, return_inverse=True)
    ys, xs = torch.meshgrid(
        torch.arange(labels.shape[0], device=labels.device, dtype=torch.float32),
        torch.arange(labels.shape[1], device=labels.device, dtype=torch.float32),
        indexing="ij",
    )
    count = torch.bincount(inverse, minlength=len(ids)).float()
    cy = torch.bincount(inverse, weights=ys.reshape(-1), minlength=len(ids)) / count
    cx = torch.bincount(inverse, weights=xs.reshape(-1), minlength=len(ids)) / count
    keep = ids > 0
    return ids[keep], torch.stack([cy, cx], dim=1)[keep]


def annotated_points(batch: dict[str, Any], i: int, *, supervised: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Label ids and locations (P, 2) of the cells of image ``i``.

    Supervised batches locate cells at the centroids of their labels, weak
    ones at the annotated points (ids None). A weak batch with ``corrected``
    cells (full labels a person drew or corrected, authoritative where
    ``reviewed`` is non-zero) drops the annotated points that fall in the
    reviewed pixels and adds the corrected cells at their centroids: ids are
    then 0 for the weak points, followed by the corrected cells' label ids.
    """
    if supervised:
        return label_centroids(batch["labels"][i])
    pts = batch["points"][i].to(batch["image"].device).float().reshape(-1, 2)
    if "corrected" not in batch:
        return None, pts
    corrected = batch["corrected"][i]
    reviewed = batch["reviewed"][i] if "reviewed" in batch else corrected > 0
    h, w = corrected.shape
    at = pts.round().long()
    at = (at[:, 0].clamp(0, h - 1), at[:, 1].clamp(0, w - 1))
    pts = pts[reviewed[at] == 0]
    ids, centres = label_centroids(corrected)
    return torch.cat([torch.zeros(len(pts), dtype=ids.dtype, device=ids.device), ids]), torch.cat([pts, centres])


def grid_valid(valid: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """(B, h, w) 0/1 map of the grid cells whose pixels are mostly valid, or None."""
    if valid is None:
        return None
    return (F.avg_pool2d(valid[:, None].float(), stride)[:, 0] > 0.5).float()


def subsample_instances(n: int, max_instances: int, seed: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices of the instances that get a mask loss: all ``n``, or ``max_instances`` of them drawn with ``seed``."""
    if n <= max_instances:
        return torch.arange(n, device=device)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:max_instances].to(device)


def match_locations(points: torch.Tensor, predicted: torch.Tensor, max_distance: float) -> torch.Tensor:
    """Each point replaced by its nearest predicted location when that lies within ``max_distance``."""
    if len(predicted) == 0 or len(points) == 0:
        return points
    d, j = torch.cdist(points, predicted).min(dim=1)
    return torch.where((d <= max_distance)[:, None], predicted[j], points)


@dataclass
class LacssTargets:
    """Targets of one batch.

    Attributes
    ----------
    positive : (B, h, w) bool tensor
        LPN score targets.
    offsets : (B, 2, h, w) tensor
        LPN offset targets (grid units).
    grid_valid : (B, h, w) tensor or None
        Grid cells that count in the LPN loss (:func:`grid_valid`).
    points : list of (P_i, 2) tensors
        Every annotated location (or label centroid) of each image.
    ids : list of (P_i,) tensors or None
        Label id of each point: in supervised batches, and in weak batches
        with corrected cells (0 for the weak points; :func:`annotated_points`).
    selected : list of (N_i,) long tensors
        Indices into ``points`` of the instances that get a mask loss.
    locations : list of (N_i, 2) tensors
        Where the segmentation head looks for each selected instance.
    """

    positive: torch.Tensor
    offsets: torch.Tensor
    grid_valid: torch.Tensor | None
    points: list[torch.Tensor]
    ids: list[torch.Tensor | None]
    selected: list[torch.Tensor]
    locations: list[torch.Tensor]


@torch.no_grad()
def lacss_targets(
    batch: dict[str, Any],
    score: torch.Tensor,
    offsets: torch.Tensor,
    step: int,
    *,
    supervised: bool,
    stride: int,
    radius: float,
    max_instances: int,
    match_start: int,
    match_distance: float,
    decode: dict[str, Any],
) -> LacssTargets:
    """LPN and instance targets of a batch at training step ``step``.

    Parameters
    ----------
    batch : dict
        Training batch (:class:`~lociseg.models.base.SegmentationModel`).
    supervised : bool
        Cells from ``labels`` (their centroids), else from ``points`` (and
        the ``corrected`` cells, when the batch has them).
    score, offsets : (B, h, w), (B, 2, h, w) tensors
        The LPN outputs of the batch (read, never differentiated).
    step : int
        Training step: seeds the subsampling and, from ``match_start`` on,
        each annotated location is replaced by the nearest location the LPN
        predicts (within ``match_distance``) so the segmentation head trains
        on the locations inference will use.
    stride, radius : int, float
        Grid stride and positive radius of the LPN targets (:func:`~lociseg.models.lpn.lpn_targets`).
    max_instances : int
        At most this many instances per image get a mask loss, drawn with
        seed ``step * 1009 + image index``.
    decode : dict
        Keyword arguments of :func:`~lociseg.models.lpn.decode_locations`.
    """
    grid = tuple(score.shape[-2:])
    device = score.device
    pos_t, off_t, points, ids, selected, locations = [], [], [], [], [], []
    for i in range(score.shape[0]):
        ids_i, pts = annotated_points(batch, i, supervised=supervised)
        pos, off, _ = lpn_targets(pts, grid, stride, radius)
        pos_t.append(pos)
        off_t.append(off)
        points.append(pts)
        ids.append(ids_i)
        locs = pts
        if step >= match_start and len(pts):
            pred, _ = decode_locations(score[i], offsets[i], stride, **decode)
            locs = match_locations(pts, pred, match_distance)
        sel = subsample_instances(len(pts), max_instances, int(step) * 1009 + i, device)
        selected.append(sel)
        locations.append(locs[sel])
    return LacssTargets(
        torch.stack(pos_t), torch.stack(off_t), grid_valid(batch.get("valid"), stride), points, ids, selected, locations
    )


def window_targets(
    labels: torch.Tensor, ids: torch.Tensor, origins: torch.Tensor, size: int, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 mask targets (N, size, size) of the instances ``ids`` in their windows, and the windows' valid pixels.

    A window pixel counts when it lies inside the image and, given ``valid``
    (H, W), where that is non-zero.
    """
    lab_win, inside = gather_windows(labels, origins, (size, size))
    target = (lab_win == ids[:, None, None]).float()
    win_valid = inside.float()
    if valid is not None:
        win_valid = win_valid * gather_windows(valid, origins, (size, size))[0]
    return target, win_valid

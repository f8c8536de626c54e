"""Label-free evidence about cell outlines: how well each follows the stains, and whose outline to train on.

Two sources draw the cells of an unlabelled image: the starting model and
the machine annotation. Neither is right everywhere. The signals here are
computed from the image and the two label images alone (no ground truth):

* ``edge``: mean gradient magnitude of the smoothed cytoplasm stain on a
  band one pixel either side of the outline, over the image's high
  gradients (an outline on the stain's edge scores high, one shifted into
  the cell or the background low);
* ``contrast``: mean stain inside the cell minus a ring just outside it
  (the ring leaves out the source's other cells), in units of the stain's
  percentile range;
* ``nuclei``: detected nuclei (the annotation's points) inside the cell;
* ``size``: ``|log(area / median area)|`` of the source's cells;
* ``agree``: the best IoU with a cell of the other source;
* ``stable``: the mean best IoU with the cells of other views of the image
  (e.g. the model run on the flipped image, flipped back): an outline the
  model draws the same way whichever way the image faces.

:func:`choose_targets` is the per-cell rule ``lociseg adapt --targets
evidence`` trains on and :func:`quality_estimate` the per-image quality
it reports; their power on the labelled sets is measured by
``benchmarks/bench_target_signals.py`` (figures in
BENCHMARKS.md, "Label-free target choice").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..metrics import match_instances
from ..metrics.matching import compute_overlaps
from ..ops.labels import largest_piece
from ..transforms import normalize_percentile
from .points import REF_DIAMETER

__all__ = [
    "SIGNALS",
    "StainMaps",
    "stain_maps",
    "outline_evidence",
    "best_iou",
    "view_agreement",
    "choose_targets",
    "quality_estimate",
    "cell_plausibility",
    "review_order",
]

#: The per-cell signals :func:`outline_evidence` returns (besides ``ids`` and ``area``).
SIGNALS = ("edge", "contrast", "nuclei", "size", "agree", "stable")

#: Pairs of outlines (model, machine) of one cell: IoU from which they count as the same cell.
MATCH_IOU = 0.5

#: ``lead="auto"``: below this F1@0.5 between the model's and the machine cells, the machine cells lead
#: (the per-image rule of ``lociseg adapt --targets auto``, measured in BENCHMARKS.md).
AGREEMENT_MIN = 0.5


@dataclass
class StainMaps:
    """An image's smoothed, normalised cytoplasm stain and its gradient magnitude (scaled to the high gradients)."""

    cytoplasm: np.ndarray
    gradient: np.ndarray
    diameter: float


def stain_maps(cytoplasm: np.ndarray, diameter: float | None = None, *, smoothing: float = 1.0) -> StainMaps:
    """Smoothed cytoplasm stain in [0, 1] and its Sobel gradient over the image's 95th percentile gradient.

    Parameters
    ----------
    cytoplasm : (H, W) array
        The cell-body stain (any dtype).
    diameter : float, optional
        Typical cell diameter (px); the smoothing scales with it (None: the reference scale).
    smoothing : float
        Gaussian sigma (px at the reference scale).
    """
    k = 1.0 if diameter is None or not np.isfinite(diameter) else float(diameter) / REF_DIAMETER
    cyto = ndi.gaussian_filter(normalize_percentile(np.asarray(cytoplasm, np.float32)), max(0.5, smoothing * k))
    grad = np.hypot(ndi.sobel(cyto, 0), ndi.sobel(cyto, 1))
    top = float(np.percentile(grad, 95))
    return StainMaps(cyto, grad / top if top > 0 else grad, float(diameter or REF_DIAMETER))


def best_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of ``a`` (ids ascending): its best IoU with a cell of ``b`` and that cell's id (0 when none).

    Returns
    -------
    ids : (N,) int64, the ids of ``a``
    iou : (N,) float64
    partner : (N,) int64
    """
    ov = compute_overlaps(a, b)
    n = len(ov.gt_labels)
    iou = np.zeros(n)
    partner = np.zeros(n, np.int64)
    order = np.argsort(ov.iou, kind="stable")  # later (higher) IoUs overwrite earlier ones
    iou[ov.gt_index[order]] = ov.iou[order]
    partner[ov.gt_index[order]] = ov.pred_labels[ov.pred_index[order]]
    return ov.gt_labels, iou, partner


def outline_evidence(
    labels: np.ndarray,
    maps: StainMaps,
    points: np.ndarray | None = None,
    other: np.ndarray | None = None,
    views: Sequence[np.ndarray] = (),
) -> dict[str, np.ndarray]:
    """The label-free signals (:data:`SIGNALS`) of every cell of ``labels``.

    Parameters
    ----------
    labels : (H, W) int array
        One source's cells.
    maps : StainMaps
        Of the same image (:func:`stain_maps`).
    points : (N, 2) array (y, x), optional
        Detected nuclei; ``nuclei`` is NaN without them.
    other : (H, W) int array, optional
        The other source's cells; ``agree`` is NaN without them.
    views : sequence of (H, W) int arrays
        Other segmentations of the same image in its own frame (test-time
        views mapped back); ``stable`` is NaN without them.

    Returns
    -------
    dict of (n_cells,) arrays
        ``ids``, ``area`` and each signal, cells in ascending id order.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    n = len(ids)
    out = {k: np.full(n, np.nan) for k in ("area", *SIGNALS)}
    out["ids"] = ids.astype(np.int64)
    if n == 0:
        return out
    ring_px = max(2, int(round(maps.diameter / 10)))
    slices = ndi.find_objects(labels)
    H, W = labels.shape
    pts_map = None
    if points is not None:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        pts_map = np.zeros(labels.shape, np.int32)
        iy = np.clip(np.round(pts[:, 0]).astype(int), 0, H - 1)
        ix = np.clip(np.round(pts[:, 1]).astype(int), 0, W - 1)
        np.add.at(pts_map, (iy, ix), 1)
    pad = ring_px + 1
    for k, lab in enumerate(ids):
        sl = slices[lab - 1]
        ys = slice(max(0, sl[0].start - pad), min(H, sl[0].stop + pad))
        xs = slice(max(0, sl[1].start - pad), min(W, sl[1].stop + pad))
        win = labels[ys, xs]
        cell = win == lab
        area = int(cell.sum())
        out["area"][k] = area
        band = ndi.binary_dilation(cell) & ~ndi.binary_erosion(cell, border_value=1)
        out["edge"][k] = float(maps.gradient[ys, xs][band].mean())
        ring = ndi.binary_dilation(cell, iterations=ring_px) & (win == 0)
        if ring.any():
            inside = maps.cytoplasm[ys, xs][cell].mean()
            out["contrast"][k] = float(inside - maps.cytoplasm[ys, xs][ring].mean())
        if pts_map is not None:
            out["nuclei"][k] = float(pts_map[ys, xs][cell].sum())
    med = float(np.median(out["area"]))
    out["size"] = np.abs(np.log(out["area"] / max(med, 1.0)))
    if other is not None:
        _, iou, _ = best_iou(labels, np.asarray(other))
        out["agree"] = iou
    if len(views):
        out["stable"] = view_agreement(labels, views)
    return out


def view_agreement(labels: np.ndarray, views: Sequence[np.ndarray]) -> np.ndarray:
    """Per cell of ``labels`` (ascending id): the mean over ``views`` of its best IoU with a cell of the view.

    Parameters
    ----------
    labels : (H, W) int array
    views : sequence of (H, W) int arrays
        Segmentations of the same image, each in the frame of ``labels``.
    """
    return np.mean([best_iou(labels, np.asarray(v))[1] for v in views], axis=0)


def cell_plausibility(ev: dict[str, np.ndarray], *, stability: bool = True) -> np.ndarray:
    """How likely each cell's outline is right, in [0, 1], from its signals alone.

    The mean of four checks, each in [0, 1]: the edge score (capped at 1),
    agreement with the other source (its best IoU), exactly one nucleus
    (1, else 0; 0.5 when unknown) and size fit (1 at the median area,
    falling to 0 at 4x or 1/4 of it); with other views of the image (the
    ``stable`` signal), their agreement is a fifth check unless ``stability``
    is False. The weights are equal: no set chose them (the measured power of
    each signal is in BENCHMARKS.md, "Label-free target choice").
    """
    edge = np.clip(np.nan_to_num(ev["edge"], nan=0.0), 0, 1)
    agree = np.nan_to_num(ev["agree"], nan=0.5)
    nuc = np.where(np.isnan(ev["nuclei"]), 0.5, (ev["nuclei"] == 1).astype(float))
    size = np.clip(1 - np.nan_to_num(ev["size"], nan=0.0) / np.log(4), 0, 1)
    stable = ev.get("stable")
    if not stability or stable is None or np.isnan(stable).all():
        return (edge + agree + nuc + size) / 4
    return (edge + agree + nuc + size + np.nan_to_num(stable, nan=0.5)) / 5


def choose_targets(
    model: np.ndarray,
    machine: np.ndarray,
    maps: StainMaps,
    points: np.ndarray | None = None,
    *,
    lead: str = "plausible",
    pairs: str = "lead",
    need_nucleus: bool = True,
    max_size_ratio: float | None = 3.0,
    views: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, dict[str, Any]]:
    """Training targets chosen cell by cell from the model's and the machine cells.

    1. Cells both sources found (IoU >= 0.5): one outline per cell, by
       ``pairs``: ``lead`` the leading source's (``lead``: ``model``,
       ``machine``; ``plausible``, the default, the source whose cells have
       the higher mean :func:`cell_plausibility`, without the stability
       check (a model agrees with its own flipped view whether it is right
       or not: with it, a weak model led and its targets lost 16 points on
       BBBC018); or ``auto``, the model where the two agree
       on at least :data:`AGREEMENT_MIN` of the cells, as ``--targets
       auto``); ``edge``, ``contrast`` or ``stable`` (needs ``views``), the
       outline with the higher signal; ``mean``, the shape halfway between
       the two.
    2. Cells only the model found are kept when they hold a detected nucleus
       (``need_nucleus``; on BBBC018 and Aitslab 16 % and 36 % of those
       without one were real cells, 58 % and 75 % of those with one).
    3. Cells only the annotation found (it seeds one cell per detected
       nucleus) are added where no chosen cell covers more than half of them,
       on the free pixels, if their area is within ``max_size_ratio`` of the
       median of that source's cells, either way (None: any size).

    The defaults (``plausible`` lead, 3x size rule) were chosen once on
    every labelled two-channel set, treated as unlabelled, against the
    previous rule (agreement lead, any size): targets F1@0.5 higher on all
    eight (BENCHMARKS.md, "Label-free target choice").

    A chosen cell never takes pixels an earlier one holds (pairs first).

    Parameters
    ----------
    model, machine : (H, W) int arrays
        The two sources' cells.
    maps : StainMaps
        Of the image (:func:`stain_maps`).
    points : (N, 2) array, optional
        Detected nuclei (``need_nucleus`` is skipped without them).
    lead, pairs, need_nucleus, max_size_ratio
        As above.
    views : sequence of (H, W) int arrays
        Other segmentations of the image (the ``stable`` signal).

    Returns
    -------
    targets : (H, W) int32
    counts : dict
        ``lead`` (resolved), ``agreement``, ``pairs``, ``model_outline``,
        ``machine_outline`` (pair choices), ``model_only``, ``machine_only``
        (single-source cells kept) and ``dropped`` (single cells left out).
    """
    model, machine = np.asarray(model), np.asarray(machine)
    agreement = float(match_instances(machine, model, thresholds=[MATCH_IOU]).f1[0])
    src = {"model": model, "machine": machine}
    ev = {
        "model": outline_evidence(model, maps, points, machine, views),
        "machine": outline_evidence(machine, maps, points, model, views),
    }
    lead = _resolve_lead(lead, agreement, ev)
    matched = _matched_pairs(model, machine)
    counts: dict[str, Any] = {"lead": lead, "agreement": round(agreement, 3), "pairs": len(matched), "dropped": 0}
    counts.update(model_outline=0, machine_outline=0, model_only=0, machine_only=0)
    out = np.zeros(model.shape, np.int32)
    boxes = {k: ndi.find_objects(src[k]) for k in src}
    next_id = _place_pairs(out, src, boxes, ev, matched, lead, pairs, counts)
    paired = {"model": {a for a, _ in matched}, "machine": {b for _, b in matched}}
    for k in (lead, "machine" if lead == "model" else "model"):
        next_id = _place_singles(
            out, src[k], boxes[k], ev[k], paired[k], next_id, counts, k, need_nucleus, max_size_ratio
        )
    return out, counts


def _resolve_lead(lead: str, agreement: float, ev: dict[str, dict[str, np.ndarray]]) -> str:
    """``auto``: the model where the two sources agree enough; ``plausible``: the source that looks more right."""
    if lead == "auto":
        return "model" if agreement >= AGREEMENT_MIN else "machine"
    if lead == "plausible":
        # without the stability check: the model's agreement with its own flipped view says how
        # consistent it is, not how right, and a weak model would lead on it
        mean = {k: float(cell_plausibility(e, stability=False).mean()) if len(e["ids"]) else 0.0 for k, e in ev.items()}
        return "model" if mean["model"] >= mean["machine"] else "machine"
    return lead


def _place_pairs(out, src, boxes, ev, matched, lead: str, pairs: str, counts: dict[str, Any]) -> int:
    """Write one outline per matched pair into ``out`` (ids from 1, free pixels only); the last id used."""
    score = {}
    if pairs in ("edge", "contrast", "stable"):
        for k in src:
            score[k] = dict(zip(ev[k]["ids"].tolist(), np.nan_to_num(ev[k][pairs], nan=-np.inf).tolist()))
    model, machine = src["model"], src["machine"]
    next_id = 0
    for a, b in matched:
        if pairs == "mean":
            ys, xs = _union_box(boxes["model"][a - 1], boxes["machine"][b - 1], model.shape)
            cell = _mean_outline(model[ys, xs] == a, machine[ys, xs] == b)
        else:
            pick = lead if pairs == "lead" else ("model" if score["model"][a] >= score["machine"][b] else "machine")
            counts[f"{pick}_outline"] += 1
            lab = a if pick == "model" else b
            ys, xs = boxes[pick][lab - 1]
            cell = src[pick][ys, xs] == lab
        next_id += 1
        win = out[ys, xs]
        win[cell & (win == 0)] = next_id
    return next_id


def _place_singles(
    out, labels, boxes, ev, paired: set[int], next_id: int, counts, source: str, need_nucleus, max_size_ratio
) -> int:
    """Add the plausible cells only ``source`` found where they are mostly free (steps 2 and 3); the last id."""
    med = float(np.median(ev["area"])) if len(ev["ids"]) else 0.0
    for i, lab in enumerate(ev["ids"].tolist()):
        if lab in paired:
            continue
        if not _plausible_single(source, ev, i, med, need_nucleus, max_size_ratio):
            counts["dropped"] += 1
            continue
        ys, xs = boxes[lab - 1]
        cell, win = labels[ys, xs] == lab, out[ys, xs]
        if (cell & (win > 0)).sum() > 0.5 * ev["area"][i]:
            continue
        piece, n_px = largest_piece(cell & (win == 0))
        if n_px:
            next_id += 1
            win[piece] = next_id
            counts[f"{source}_only"] += 1
    return next_id


def _plausible_single(
    source: str, ev: dict[str, np.ndarray], i: int, median: float, need_nucleus: bool, max_size_ratio: float | None
) -> bool:
    """Whether a cell only one source found is kept (:func:`choose_targets`, steps 2 and 3)."""
    if source == "model":
        return not (need_nucleus and ev["nuclei"][i] == 0)
    if max_size_ratio is None or median <= 0:
        return True
    return abs(np.log(ev["area"][i] / median)) <= np.log(max_size_ratio)


def _union_box(p: tuple[slice, slice], q: tuple[slice, slice], shape: tuple[int, ...], pad: int = 2):
    """The bounding box of two boxes, ``pad`` px larger, clipped to ``shape``."""
    return tuple(
        slice(max(0, min(u.start, v.start) - pad), min(n, max(u.stop, v.stop) + pad))
        for u, v, n in zip(p, q, shape, strict=True)
    )


def _mean_outline(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The shape halfway between two masks of one cell: where the mean of their signed distances is inside."""
    sd = np.zeros(a.shape)
    for m in (a, b):
        sd += ndi.distance_transform_edt(m) - ndi.distance_transform_edt(~m)
    return sd > 0


def _matched_pairs(a: np.ndarray, b: np.ndarray, threshold: float = MATCH_IOU) -> list[tuple[int, int]]:
    """(id in a, id in b) of the cells the two label images share at IoU >= threshold (one-to-one above 0.5)."""
    ov = compute_overlaps(a, b)
    keep = ov.iou >= threshold
    return [
        (int(ov.gt_labels[g]), int(ov.pred_labels[p]))
        for g, p in zip(ov.gt_index[keep], ov.pred_index[keep], strict=True)
    ]


def quality_estimate(
    labels: np.ndarray,
    reference: np.ndarray,
    maps: StainMaps,
    points: np.ndarray | None = None,
    views: Sequence[np.ndarray] = (),
) -> dict[str, float]:
    """A label-free estimate of a segmentation's F1@0.5 on one image.

    ``precision``: the mean :func:`cell_plausibility` of its cells (against
    ``reference``, the other source); ``recall``: the fraction of detected
    nuclei (``points``) inside one of its cells (without points, the fraction
    of the reference's cells it matches at IoU 0.5); ``quality`` their
    harmonic mean. Also ``agreement``: F1@0.5 between ``labels`` and ``reference``.

    Parameters
    ----------
    labels : (H, W) int array
        The segmentation to judge (e.g. the adapted model's cells).
    reference : (H, W) int array
        An independent drawing of the same cells (e.g. the machine cells).
    maps : StainMaps
    points : (N, 2) array, optional
        Detected nuclei.
    views : sequence of (H, W) int arrays
        Other segmentations of the image (e.g. the model on the flipped
        image, mapped back): the ``stable`` check of :func:`cell_plausibility`.
    """
    labels, reference = np.asarray(labels), np.asarray(reference)
    agreement = float(match_instances(reference, labels, thresholds=[MATCH_IOU]).f1[0])
    ev = outline_evidence(labels, maps, points, reference, views)
    precision = float(cell_plausibility(ev).mean()) if len(ev["ids"]) else 0.0
    pts = None if points is None else np.asarray(points, np.float64).reshape(-1, 2)
    if pts is not None and len(pts):
        H, W = labels.shape
        iy = np.clip(np.round(pts[:, 0]).astype(int), 0, H - 1)
        ix = np.clip(np.round(pts[:, 1]).astype(int), 0, W - 1)
        recall = float((labels[iy, ix] > 0).mean())
    else:
        recall = agreement
    quality = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"quality": quality, "precision": precision, "recall": recall, "agreement": agreement}


def review_order(quality: dict[str, dict[str, float]], fraction: float = 0.2) -> list[str]:
    """The names with the lowest estimated ``quality``, worst first: ``fraction`` of them, at least one.

    Parameters
    ----------
    quality : mapping name -> dict with key ``quality``
        E.g. :func:`quality_estimate` per image.
    fraction : float
        Share of the images to flag.
    """
    if not quality:
        return []
    ranked = sorted(quality, key=lambda n: (quality[n]["quality"], n))
    return ranked[: max(1, int(np.ceil(fraction * len(ranked))))]

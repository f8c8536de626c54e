"""Summary statistics of a data set (``lociseg info``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..errors import InputError
from .dataset import SegmentationDataset

__all__ = ["dataset_summary"]


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {
        "min": float(values.min()),
        "p05": float(np.percentile(values, 5)),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def dataset_summary(ds: SegmentationDataset, *, progress: bool | None = None) -> dict[str, Any]:
    """Images, shapes, channels, object counts and object sizes of a data set.

    Parameters
    ----------
    ds : SegmentationDataset
    progress : bool or None
        Show a progress bar (None: only on a terminal).

    Returns
    -------
    summary : dict
        ``name``, ``images``, ``labelled``, ``channels``, ``dtypes``, ``shapes``
        (shape -> count), ``objects`` (total and per-image min/median/max),
        ``area`` and ``diameter`` (equivalent diameter, px) statistics over
        all objects, ``constant_images`` (names with a blank channel) and ``failed`` (name -> error) for unreadable samples.
    """
    from tqdm import tqdm

    shapes: Counter = Counter()
    dtypes: Counter = Counter()
    counts, areas, points = [], [], []
    failed: dict[str, str] = {}
    constant: list[str] = []
    labelled = 0
    for name in tqdm(ds.names, desc=ds.name, disable=None if progress is None else not progress, leave=False):
        try:
            s = ds[name]
        except InputError as exc:
            failed[name] = str(exc)
            continue
        shapes["x".join(map(str, s.image.shape))] += 1
        dtypes[str(s.image.dtype)] += 1
        flat = s.image.reshape(s.image.shape[0], -1)
        if np.any(flat.min(axis=1) == flat.max(axis=1)):
            constant.append(name)  # blank channel: worth a look, not an error
        if s.points is not None:
            points.append(len(s.points))
        if s.labels is None:
            continue
        labelled += 1
        a = np.bincount(s.labels.ravel())[1:]
        a = a[a > 0]
        counts.append(a.size)
        areas.append(a)
    areas_all = np.concatenate(areas) if areas else np.zeros(0)
    count_arr = np.asarray(counts)
    return {
        "name": ds.name,
        "images": len(ds),
        "labelled": labelled,
        "channels": list(ds.channel_names),
        "dtypes": dict(dtypes),
        "shapes": dict(shapes.most_common()),
        "objects": None
        if not counts
        else {
            "total": int(count_arr.sum()),
            "per_image_min": int(count_arr.min()),
            "per_image_median": float(np.median(count_arr)),
            "per_image_max": int(count_arr.max()),
        },
        "area": _stats(areas_all),
        "diameter": _stats(2.0 * np.sqrt(areas_all / np.pi)),
        "points": None if not points else int(np.sum(points)),
        "constant_images": constant,
        "failed": failed,
    }

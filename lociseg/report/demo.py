"""Segment example images from the shared data sets and build a report (``lociseg demo``)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data import default_data_root, load_dataset
from ..errors import ConfigError
from .html import ReportItem, build_report

log = logging.getLogger(__name__)

__all__ = ["DEMO_SETS", "demo_items", "run_demo"]

# model kind -> data sets shown (unlabelled CellProfiler field first: the typical user image)
DEMO_SETS: dict[str, tuple[str, ...]] = {
    "cells": ("cellprofiler-human", "bbbc018@test"),
    "nuclei": ("dsb2018-test", "koyuncu@test"),
}


def demo_items(
    segmenters: Mapping[str, Any],
    *,
    per_set: int = 2,
    root: str | os.PathLike | None = None,
    sets: Mapping[str, Sequence[str]] = DEMO_SETS,
    progress: bool | None = None,
) -> list[ReportItem]:
    """Segment the first ``per_set`` images of each demo data set with the model of its kind.

    Parameters
    ----------
    segmenters : mapping of kind -> :class:`lociseg.predict.api.Segmenter`
        ``"cells"`` (2 channels: cytoplasm, nuclei) and/or ``"nuclei"`` (1 channel).
    per_set : int
        Images per data set.
    root : path-like, optional
        Data root (default :func:`lociseg.data.default_data_root`, which
        raises a clear error when the shared data is absent).
    sets : mapping of kind -> data set specs
    progress : bool or None
        tqdm bar (None: only on a terminal).
    """
    from tqdm.auto import tqdm

    root = Path(root) if root is not None else default_data_root()
    jobs = []
    for kind, seg in segmenters.items():
        for spec in sets.get(kind, ()):
            ds = load_dataset(spec, root=root)
            jobs += [(kind, seg, spec, ds, i) for i in range(min(per_set, len(ds)))]
    items = []
    for kind, seg, spec, ds, i in tqdm(
        jobs, desc="demo", unit="image", disable=None if progress is None else not progress
    ):
        sample = ds[i]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels, table = seg.segment(sample.image, channel_names=sample.meta.get("channel_names"))
        for w in caught:
            log.info("%s %s: %s", spec, sample.name, w.message)
        meta = {
            "data set": spec,
            "model": f"{kind}: {getattr(seg, 'name', '?')}",
            "cells found": len(table),
            "diameter used (px)": table.meta.get("diameter_used", float("nan")),
            "diameter estimated": table.meta.get("diameter_estimated", ""),
            "scale confidence": table.meta.get("scale_confidence", ""),
            "cells with a high score": table.meta.get("high_score_fraction", ""),
            "channels": ", ".join(map(str, sample.meta.get("channel_names") or [])),
        }
        items.append(
            ReportItem(f"{spec} {sample.name}", sample.image, labels, table=table, gt=sample.labels, meta=meta)
        )
    return items


def run_demo(
    out_dir: str | os.PathLike,
    segmenters: Mapping[str, Any],
    *,
    per_set: int = 2,
    root: str | os.PathLike | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`demo_items` then :func:`~lociseg.report.build_report` (``overwrite`` goes to it); returns the ``index.html`` path."""
    if not segmenters:
        raise ConfigError("no model to run the demo with")
    items = demo_items(segmenters, per_set=per_set, root=root, progress=progress)
    kinds = ", ".join(sorted(segmenters))
    return build_report(items, out_dir, title=f"lociseg demo ({kinds})", overwrite=overwrite)

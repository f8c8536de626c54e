"""Segment example images from the shared data sets and build a report (``lociseg demo``)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..batch import check_new
from ..data import default_data_root, load_dataset
from ..errors import ConfigError, LociError
from ..predict import api  # api.load_model looked up at call time (tests stand in a model there)
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


def check_demo_options(out: Path, per_set: int, overwrite: bool) -> None:
    """Refuse a bad ``per_set``, an ``out`` that is a file, or a report there already (before any model runs)."""
    if per_set < 1:
        raise ConfigError(f"--per-set must be at least 1, got {per_set}")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder (the report folder), not a file", path=out)
    check_new([out / "index.html"], overwrite)


def demo_segmenters(model: str | None, device: str = "auto") -> dict[str, Any]:
    """``{"cells": ..., "nuclei": ...}``: ``model`` under its kind (by channel count), else the shipped models there are.

    Raises
    ------
    ConfigError
        ``model`` takes neither 1 nor 2 channels, or no shipped model loads.
    """
    if model is not None:
        seg = api.load_model(model, device=device)
        kind = {1: "nuclei", 2: "cells"}.get(int(seg.spec.in_channels))
        if kind is None:
            raise ConfigError(
                f"the demo needs a 1-channel (nuclei) or 2-channel (cells) model; {model} takes {seg.spec.in_channels}"
            )
        return {kind: seg}
    segmenters, problems = {}, []
    for kind in ("cells", "nuclei"):
        try:
            segmenters[kind] = api.load_model(kind, device=device)
        except LociError as exc:
            problems.append(f"{kind}: {exc}")
    if not segmenters:
        raise ConfigError("no shipped model could be loaded (" + "; ".join(problems) + "); pass --model PATH")
    for p in problems:
        log.warning("skipping %s", p)
    return segmenters

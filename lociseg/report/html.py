"""A self-contained HTML report of segmentations: outlines, cell tables, histograms, metrics.

>>> items = [ReportItem("field1", image, labels, gt=gt_labels)]   # doctest: +SKIP
>>> build_report(items, "report/")                                # doctest: +SKIP
PosixPath('report/index.html')

Files written: ``index.html``, ``<name>.png`` (outlines over the image),
``<name>.cells.csv`` (every cell). Histograms are inline SVG, so the page
needs no JavaScript and no network.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..batch import check_new
from ..export.formats import cell_measurements, write_csv
from ..io.files import atomic_write
from ..metrics import evaluate_image

__all__ = ["ReportItem", "build_report", "overlay_outlines", "svg_histogram"]

PRED_COLOR = (255, 220, 0)  # yellow outlines: predictions
GT_COLOR = (255, 0, 255)  # magenta: ground truth
HIST_COLUMNS = (
    ("area", "Area (px)"),
    ("equivalent_diameter", "Diameter (px)"),
    ("eccentricity", "Eccentricity"),
    ("solidity", "Solidity"),
)
METRIC_KEYS = (
    ("n_gt", "GT cells"),
    ("n_pred", "predicted"),
    ("f1_50", "F1@0.5"),
    ("precision_50", "precision@0.5"),
    ("recall_50", "recall@0.5"),
    ("ap50", "AP50"),
    ("map", "mAP 0.5:0.95"),
    ("pq_50", "PQ@0.5"),
    ("fg_iou", "foreground IoU"),
)


@dataclass
class ReportItem:
    """One image of the report.

    Attributes
    ----------
    name : str
        Shown as the section title; also the base of the files written.
    image : (H, W) or (C, H, W) ndarray
        Raw image (any dtype); up to 3 channels are shown, as
        green / blue / red for 2 channels (cytoplasm, nuclei) as in the
        lociseg channel order, grey for one.
    labels : (H, W) int ndarray
        Predicted cells.
    table : dict of column -> 1-D array or CellTable, optional
        The model's per-cell table; its ``score`` column (matched by
        ``label``) is added to the shape measurements
        (:func:`lociseg.export.formats.cell_measurements`).
    gt : (H, W) int ndarray, optional
        Ground truth: adds its outlines and a metrics table.
    meta : dict
        Shown as a small key/value list (model, diameter used...).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    table: dict[str, np.ndarray] | None = None
    gt: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _display_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of a raw image, each channel stretched to its 1-99.8 percentiles."""
    img = np.asarray(image, np.float32)
    img = img[None] if img.ndim == 2 else img
    chans = []
    for ch in img[:3]:
        lo, hi = np.percentile(ch, (1, 99.8))
        chans.append(np.clip((ch - lo) / (hi - lo if hi > lo else 1.0), 0, 1))
    if len(chans) == 1:
        rgb = np.stack(chans * 3, -1)
    elif len(chans) == 2:  # (cytoplasm, nuclei) -> green, blue; a bit of nuclei in red keeps them visible
        rgb = np.stack([0.3 * chans[1], chans[0], chans[1]], -1)
    else:
        rgb = np.stack(chans[:3], -1)
    return (rgb * 255).round().astype(np.uint8)


def overlay_outlines(image: np.ndarray, labels: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """RGB image with predicted outlines (yellow) and ground-truth outlines (magenta) drawn in.

    Parameters
    ----------
    image : (H, W) or (C, H, W) ndarray
    labels : (H, W) int ndarray
    gt : (H, W) int ndarray, optional

    Returns
    -------
    (H, W, 3) uint8 ndarray
    """
    from skimage.segmentation import find_boundaries

    rgb = _display_rgb(image)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not match image {rgb.shape[:2]}")
    if gt is not None:
        rgb[find_boundaries(gt, mode="inner")] = GT_COLOR
    rgb[find_boundaries(labels, mode="inner")] = PRED_COLOR
    return rgb


def svg_histogram(values: np.ndarray, title: str, *, bins: int = 30, width: int = 320, height: int = 180) -> str:
    """A bar histogram as an inline SVG string (no plotting library needed)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    esc = html.escape(title)
    if v.size == 0:
        return f'<svg width="{width}" height="{height}" role="img"><title>{esc}</title><text x="10" y="20">{esc}: no cells</text></svg>'
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi if hi > lo else lo + 1))
    ml, mb, mt = 36, 30, 22  # margins: left (counts), bottom (axis labels), top (title)
    pw, ph = width - ml - 8, height - mb - mt
    cmax = max(int(counts.max()), 1)
    bw = pw / bins
    bars = "".join(
        f'<rect x="{ml + i * bw:.1f}" y="{mt + ph - ph * c / cmax:.1f}" width="{max(bw - 1, 1):.1f}" '
        f'height="{ph * c / cmax:.1f}" fill="#4a7fb5"><title>{edges[i]:.3g}–{edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    median = float(np.median(v))
    mx = ml + pw * (median - edges[0]) / (edges[-1] - edges[0])
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" class="hist">'
        f"<title>{esc}</title>"
        f'<text x="{ml}" y="14" font-size="12" font-weight="bold">{esc} (n={v.size}, median {median:.3g})</text>'
        f"{bars}"
        f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{mt}" y2="{mt + ph}" stroke="#d33" stroke-dasharray="3,2"/>'
        f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="#333"/>'
        f'<text x="{ml}" y="{height - 12}" font-size="10">{edges[0]:.3g}</text>'
        f'<text x="{ml + pw}" y="{height - 12}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text>'
        f'<text x="{ml - 4}" y="{mt + 8}" font-size="10" text-anchor="end">{cmax}</text>'
        f'<text x="{ml - 4}" y="{mt + ph}" font-size="10" text-anchor="end">0</text>'
        f"</svg>"
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return html.escape(str(v))


PAGE_COLUMNS = ("label", "centroid_y", "centroid_x", "area", "equivalent_diameter", "eccentricity", "solidity", "score")


def _table_html(cols: dict[str, np.ndarray], max_rows: int) -> str:
    names = [c for c in PAGE_COLUMNS if c in cols]  # the CSV has the rest
    n = len(next(iter(cols.values()))) if cols else 0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(cols[c][i])}</td>" for c in names) + "</tr>" for i in range(min(n, max_rows))
    )
    more = f'<p class="note">First {max_rows} of {n} cells shown.</p>' if n > max_rows else ""
    return f'<table class="cells"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}
.summary td,.summary th,.metrics td,.metrics th,.cells td,.cells th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:right}
.summary th,.metrics th,.cells th{background:#f2f2f2} table{border-collapse:collapse;margin:8px 0}
.summary td:first-child,.summary th:first-child{text-align:left}
.figure{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap} .figure img{max-width:560px;width:100%;image-rendering:pixelated;border:1px solid #999}
.hists{display:flex;flex-wrap:wrap;gap:6px} .note{color:#666;font-size:12px} .legend span{font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px} dt{color:#666}
"""


def _summary_html(summary: list[dict[str, Any]]) -> tuple[str, str]:
    """Header and body rows of the report's summary table (one row per image, linked to its section)."""
    keys = ["name", "cells"] + [k for k, _ in METRIC_KEYS[2:6] if any(k in r for r in summary)]
    labels_of = dict(METRIC_KEYS)
    head = "".join(f"<th>{html.escape(labels_of.get(k, k))}</th>" for k in keys)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td><a href="#{r["anchor"]}">{html.escape(r["name"])}</a></td>'
            if k == "name"
            else f"<td>{_fmt(r.get(k, ''))}</td>"
            for k in keys
        )
        + "</tr>"
        for r in summary
    )
    return head, body


def build_report(
    items: Sequence[ReportItem],
    out_dir: str | os.PathLike,
    *,
    title: str = "lociseg segmentation report",
    max_rows: int = 20,
    overwrite: bool = False,
) -> Path:
    """Write an HTML report of segmented images.

    Parameters
    ----------
    items : sequence of ReportItem
    out_dir : path-like
        Created when missing; receives ``index.html``, one PNG and one CSV per item.
    title : str
    max_rows : int
        Cells shown per table in the page (the CSV has all).
    overwrite : bool
        Replace existing files; otherwise any of them existing is an
        :class:`~lociseg.errors.InputError`, raised before anything is written.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections, summary = [], []
    bases: list[str] = []
    for item in items:
        base = _safe_name(item.name)
        while base in bases:
            base += "_"
        bases.append(base)
    check_new([out / "index.html", *(out / f"{b}{e}" for b in bases for e in (".png", ".cells.csv"))], overwrite)
    for item, base in zip(items, bases):
        labels = np.asarray(item.labels)
        cols = cell_measurements(labels)
        given = item.table.to_dict() if hasattr(item.table, "to_dict") else item.table
        if given is not None and "score" in given and "label" in given:
            # carry the model's per-cell scores over, matched by label
            by_label = dict(zip(np.asarray(given["label"]).tolist(), np.asarray(given["score"], float).tolist()))
            cols["score"] = np.array([by_label.get(int(k), np.nan) for k in cols["label"]])
        overlay = Image.fromarray(overlay_outlines(item.image, labels, item.gt))
        atomic_write(out / f"{base}.png", lambda tmp, im=overlay: im.save(tmp, optimize=True), overwrite=True)
        atomic_write(out / f"{base}.cells.csv", lambda tmp, c=cols: write_csv(tmp, c), overwrite=True)
        metrics_html, row = "", {"name": item.name, "anchor": base, "cells": len(cols["label"])}
        if item.gt is not None:
            m = evaluate_image(item.gt, labels)
            row.update({k: m[k] for k, _ in METRIC_KEYS[2:6]})
            metrics_html = (
                "<h3>Against ground truth</h3><table class='metrics'><tr>"
                + "".join(f"<th>{lbl}</th>" for _, lbl in METRIC_KEYS)
                + "</tr><tr>"
                + "".join(f"<td>{_fmt(m[k])}</td>" for k, _ in METRIC_KEYS)
                + "</tr></table>"
            )
        summary.append(row)
        hists = "".join(svg_histogram(cols[c], lbl) for c, lbl in HIST_COLUMNS if c in cols)
        meta = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{_fmt(v)}</dd>" for k, v in item.meta.items())
        legend = '<p class="legend note">Outlines: <span style="color:#c9a800">yellow</span> = lociseg'
        legend += ', <span style="color:#c0c">magenta</span> = ground truth</p>' if item.gt is not None else "</p>"
        sections.append(
            f'<section id="{base}"><h2>{html.escape(item.name)}</h2>'
            f'<div class="figure"><a href="{base}.png"><img src="{base}.png" alt="outlines of {html.escape(item.name)}"></a>'
            f"<div><dl>{meta}</dl>{legend}{metrics_html}</div></div>"
            f'<h3>Cell size and shape</h3><div class="hists">{hists}</div>'
            f'<h3>Cells (<a href="{base}.cells.csv">all {row["cells"]} as CSV</a>)</h3>{_table_html(cols, max_rows)}'
            f"</section>"
        )
    head, body = _summary_html(summary)
    from .. import __version__

    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="note">lociseg {__version__}; {len(items)} image(s).</p>'
        f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        + "".join(sections)
        + "</body></html>\n"
    )
    index = out / "index.html"
    atomic_write(index, page, overwrite=True)  # last: its presence means the report is whole
    return index

"""``lociseg adapt``: adapt a trained model to a lab's own unlabelled images, with a report page.

>>> run, page = adapt(["plate1/"], "adapted/", nucleus="DNA", cytoplasm="actin", minutes=15)  # doctest: +SKIP

The work (machine annotations, targets, fine-tuning, segmentation) is
:func:`lociseg.train.adapt.adapt_model`; after it, :func:`write_adapt_page`
writes ``report/index.html``:
what was chosen, the loss curve, and machine cells, the starting model and
the adapted model side by side. ``out`` is itself the run folder
(``best/``, ``last/``, ``log.csv``), so it loads wherever a model name does.
"""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io.files import atomic_write
from ..train.adapt import TARGETS, AdaptRun, adapt_model
from .html import CSS, overlay_outlines

__all__ = ["TARGETS", "adapt", "write_adapt_page"]

_SHOWN = 4  # images shown side by side in the report


def adapt(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]], out: str | os.PathLike, **options: Any
) -> tuple[AdaptRun, Path | None]:
    """Fine-tune a model on machine annotations of ``images``, segment them with the result, then write the page.

    Parameters
    ----------
    images, out
        As in :func:`lociseg.train.adapt.adapt_model`; ``out`` also gets
        ``report/index.html`` (:func:`write_adapt_page`) and the contact
        sheets of the foreground candidates in ``report/sheets/``.
    **options
        The fields of :class:`~lociseg.train.adapt.AdaptOptions`
        (``nucleus``, ``cytoplasm``, ``minutes``, ``init``, ``targets``,
        ``steps``, ``lr``, ``resume``, ``overwrite``, ``device``,
        ``threads``, ``progress``, ``callback``).

    Returns
    -------
    run : AdaptRun
        What :func:`~lociseg.train.adapt.adapt_model` did.
    page : Path or None
        The report page; None when the run was interrupted.

    Raises
    ------
    InputError
        No usable image, or a run in ``out`` without ``resume``/``overwrite``.
    """
    out = Path(out)
    run = adapt_model(images, out, sheets=out / "report" / "sheets", **options)
    return run, None if run.interrupted else write_adapt_page(run, out)


def write_adapt_page(run: AdaptRun, out: str | os.PathLike) -> Path:
    """``out/report/index.html`` of a finished adapt run: settings, skipped images, cells per image, loss curve,
    machine cells, starting and adapted model side by side on the first images, contact sheets.
    """
    out = Path(out)
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    order = run.info["model_channels"]
    rows = []
    for k, s in enumerate(run.samples):
        rows.append(
            {
                "name": s.name,
                "machine cells": int(len(np.unique(s.machine)) - 1),
                "targets": int(len(np.unique(s.target)) - 1),
                "final cells": int(len(s.table)),
                "diameter (px)": round(float(s.table.meta["diameter_used"]), 1),
                "estimated quality": (s.quality or {}).get("quality", ""),
            }
        )
        if k < _SHOWN:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="cell diameter estimated")
                before = run.start.segment(s.image, channels=order, diameter=s.diameter)[0]
            shown = s.image[[1, 0]]  # cytoplasm green, nuclei blue
            for tag, lab in (("machine", s.machine), ("final", s.labels), ("before", before)):
                Image.fromarray(overlay_outlines(shown, lab)).save(report_dir / f"{s.name}.{tag}.png", optimize=True)
    return _write_page(report_dir, run.info, rows, out / "log.csv", min(len(rows), _SHOWN))


def svg_curve(x: Sequence[float], y: Sequence[float], title: str, *, width: int = 480, height: int = 200) -> str:
    """A line plot as an inline SVG string."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    esc = html.escape(title)
    if x.size < 2:
        return f'<svg width="{width}" height="{height}" role="img"><text x="10" y="20">{esc}: no curve</text></svg>'
    ml, mb, mt, pw = 44, 24, 22, width - 52
    ph = height - mb - mt
    lo, hi = float(y.min()), float(y.max()) if y.max() > y.min() else float(y.min()) + 1
    px = ml + pw * (x - x[0]) / max(x[-1] - x[0], 1e-9)
    py = mt + ph * (1 - (y - lo) / (hi - lo))
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"><title>{esc}</title>'
        f'<text x="{ml}" y="14" font-size="12" font-weight="bold">{esc}</text>'
        f'<polyline points="{pts}" fill="none" stroke="#4a7fb5" stroke-width="1.5"/>'
        f'<text x="{ml - 4}" y="{mt + 8}" font-size="10" text-anchor="end">{hi:.3g}</text>'
        f'<text x="{ml - 4}" y="{mt + ph}" font-size="10" text-anchor="end">{lo:.3g}</text>'
        f'<text x="{ml}" y="{height - 8}" font-size="10">step {x[0]:.0f}</text>'
        f'<text x="{ml + pw}" y="{height - 8}" font-size="10" text-anchor="end">{x[-1]:.0f}</text></svg>'
    )


def _write_page(report_dir: Path, info: dict, rows: list[dict], log_csv: Path, shown: int) -> Path:
    import csv

    steps, loss = [], []
    if log_csv.is_file():
        with open(log_csv, newline="") as fh:
            for r in csv.DictReader(fh):
                steps.append(float(r["step"]))
                loss.append(float(r["loss"]))
    esc = html.escape
    settings = "".join(
        f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>"
        for k, v in info.items()
        if k not in ("images", "skipped", "quality", "look_first")
    )
    look = "".join(
        f"<li>{esc(n)}: estimated quality {info['quality'][n]['quality']:.2f}</li>" for n in info.get("look_first", [])
    )
    skipped = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in info["skipped"].items()) or "<li>none</li>"
    head = "".join(f"<th>{esc(k)}</th>" for k in rows[0]) if rows else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    panels = (("machine", "machine cells"), ("before", "starting model"), ("final", "adapted model"))
    pairs = "".join(
        f'<h3>{esc(r["name"])}</h3><div class="figure">'
        + "".join(
            f'<figure><img src="{esc(r["name"])}.{t}.png" alt="{t}"><figcaption>{cap}</figcaption></figure>'
            for t, cap in panels
        )
        + "</div>"
        for r in rows[:shown]
    )
    sheets = "".join(
        f'<figure><a href="sheets/{esc(r["name"])}.png"><img src="sheets/{esc(r["name"])}.png" '
        f'alt="foreground candidates of {esc(r["name"])}"></a><figcaption>{esc(r["name"])}</figcaption>'
        f"</figure>"
        for r in rows
        if (report_dir / "sheets" / f"{r['name']}.png").is_file()
    )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>lociseg adapt</title>'
        f"<style>{CSS} figure{{display:inline-block;margin:4px}} figure img{{max-width:420px}}</style></head><body>"
        f"<h1>lociseg adapt</h1><h2>Settings</h2><dl>{settings}</dl><h2>Skipped images</h2><ul>{skipped}</ul>"
        f"<h2>Look at these first</h2><p>Lowest label-free quality estimate (agreement with the machine cells, "
        f"outline evidence, nuclei covered; see docs/adapt.md):</p><ul>{look or '<li>none</li>'}</ul>"
        f'<h2>Cells per image</h2><table class="summary"><tr>{head}</tr>{body}</table>'
        f"<h2>Training loss</h2>{svg_curve(steps, loss, 'loss per step')}"
        f"<h2>Machine cells, starting model, adapted model</h2>{pairs}"
        f"<h2>Foreground chosen per image (red frame; last panel: machine cells)</h2>{sheets}</body></html>\n"
    )
    return atomic_write(report_dir / "index.html", page, overwrite=True)

"""The classical (CellProfiler-style, training-free) baseline on the test split of every labelled set.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/classical_baseline.py [--sets koyuncu,bbbc018] \
        [--out benchmarks/classical] [--limit N]

Pipelines (:mod:`lociseg.annotate.classical`, fixed rules, scales read off
each image, nothing set per data set): nucleus sets use
:func:`~lociseg.annotate.classical_nuclei` on the nuclear channel; two-channel
cell sets :func:`~lociseg.annotate.classical_cells` (nuclei grown over an
Otsu foreground of the cell channel; a phase-contrast cell channel enters as
its local standard deviation); one-channel phase-contrast sets
:func:`~lociseg.annotate.classical_phase_cells`. Sets split by cell line
(DeepCell) are scored per ``meta["group"]``, each line over all its fields.
Partially labelled sets (T cells: only marker-positive cells are labelled)
are scored with ``partial_labels=True``: predictions lying mostly on
unlabelled pixels are not counted (:func:`lociseg.metrics.drop_unlabelled`).

Scores are those of ``benchmarks/evaluate_model.py`` (pooled over images;
every classical object has score 1, so AP ranks ties). Writes one small JSON
per row under ``--out`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BaselineSet:
    """One scored set: data spec, pipeline, channels (cell channel first for cells)."""

    spec: str
    pipeline: str  # "nuclei", "cells", "phase-cells" (one channel) or "cells+phase" (nucleus + phase)
    channels: tuple[str, ...] | None
    by_group: bool = False


SETS = {
    "koyuncu@test": BaselineSet("koyuncu@test", "nuclei", ("nuclei",)),
    "dsb2018-test": BaselineSet("dsb2018-test", "nuclei", ("nuclei",)),
    "bbbc018:nuclei@test": BaselineSet("bbbc018:nuclei@test", "nuclei", ("nuclei",)),
    "aitslab-nuclei@test": BaselineSet("aitslab-nuclei@test", "nuclei", ("nuclei",)),
    "aitslab:nuclei@test": BaselineSet("aitslab:nuclei@test", "nuclei", ("nuclei",)),
    "coelho@test": BaselineSet("coelho@test", "nuclei", ("nuclei",)),
    "bbbc018@test": BaselineSet("bbbc018@test", "cells", ("cell", "nuclei")),
    "aitslab@test": BaselineSet("aitslab@test", "cells", ("cell", "nuclei")),
    "deepcell": BaselineSet("deepcell", "cells+phase", ("phase", "nuclei"), by_group=True),
    "usiigaci@test": BaselineSet("usiigaci@test", "phase-cells", None),
    "tcells@test": BaselineSet("tcells@test", "cells", ("cell", "nuclei")),
}


def segment(sample, pipeline: str) -> np.ndarray:
    """The classical label image of one sample (channels as loaded for its :class:`BaselineSet`)."""
    from lociseg.annotate import classical_cells, classical_nuclei, classical_phase_cells

    img = sample.image
    if pipeline == "nuclei":
        return classical_nuclei(img[0])[0]
    if pipeline == "phase-cells":
        return classical_phase_cells(img[0])
    return classical_cells(img[1], img[0], phase=pipeline == "cells+phase")[0]


def score_set(name: str, entry: BaselineSet, limit: int | None) -> list[dict]:
    """Segment and score every labelled image of one set; one row per set (or per group)."""
    from lociseg.data import load_dataset
    from lociseg.metrics import evaluate_pairs

    ds = load_dataset(entry.spec, channels=list(entry.channels) if entry.channels else None)
    gts, preds, names, groups, seconds = [], [], [], [], []
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        s = ds[i]
        if s.labels is None:
            continue
        t0 = time.perf_counter()
        preds.append(segment(s, entry.pipeline))
        seconds.append(time.perf_counter() - t0)
        gts.append(s.labels)
        names.append(s.name)
        groups.append(str(s.meta.get("group")) if entry.by_group else None)
    # Sets that label only some objects say so (T cells: marker-positive cells only).
    partial = bool(getattr(ds, "info", {}).get("partial_labels", False))
    rep = evaluate_pairs(gts, preds, names=names, groups=groups, partial_labels=partial)
    pooled = rep.groups.items() if entry.by_group else [(None, rep.overall["sum"])]
    rows = []
    for group, r in pooled:
        per = r["per_threshold"]
        k75 = int(np.argmin(np.abs(np.asarray(per["thresholds"], float) - 0.75)))
        images = [im for im, g in zip(rep.images, groups) if g == group]
        secs = [t for t, g in zip(seconds, groups) if g == group]
        rows.append(
            {
                "set": name if group is None else f"{name}:{group}",
                "spec": entry.spec,
                "pipeline": entry.pipeline,
                "partial_labels": partial,
                "images": len(images),
                "n_gt": int(r["n_gt"]),
                "n_pred": int(r["n_pred"]),
                "f1_50": float(r["f1_50"]),
                "f1_75": float(np.asarray(per["f1"])[k75]),
                "dsb_ap_50": float(r["dsb_ap_50"]),
                "ap50": float(r["ap50"]),
                "ap75": float(r["ap75"]),
                "map": float(r["map"]),
                "s_per_image": float(np.mean(secs)) if secs else float("nan"),
                "per_image": [
                    {k: im[k] for k in ("name", "n_gt", "n_pred")} | {"f1_50": round(float(im["f1_50"]), 4)}
                    for im in images
                ],
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated names from: " + ", ".join(SETS))
    ap.add_argument("--out", default="benchmarks/classical", help="folder for one JSON per row")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per set (smoke runs)")
    args = ap.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise SystemExit(f"unknown set(s) {unknown}; known: {', '.join(SETS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    host = f"{platform.processor() or platform.machine()}, {date.today()}"
    print("| set | pipeline | images | GT | pred | F1@0.5 | F1@0.75 | AP50 | AP75 | mAP | s/image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for row in score_set(name, SETS[name], args.limit):
            row |= {"date": str(date.today()), "host": host, "limit": args.limit}
            path = out / (row["set"].replace(":", "_").replace("@", "_").replace("/", "_") + ".json")
            path.write_text(json.dumps(row, indent=1) + "\n")
            print(
                f"| {row['set']} | {row['pipeline']}{' (partial)' if row['partial_labels'] else ''} | "
                f"{row['images']} | {row['n_gt']} | {row['n_pred']} | {row['f1_50']:.3f} | {row['f1_75']:.3f} | "
                f"{row['ap50']:.3f} | {row['ap75']:.3f} | {row['map']:.3f} | {row['s_per_image']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

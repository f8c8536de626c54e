"""Quality and speed of the machine annotations on BBBC018.

For every labelled field of the chosen splits: DoG points vs the hand-drawn
nuclei (precision / recall, a point matches the nucleus it falls inside,
one-to-one), the automatically chosen graph-cut foreground vs the union of
the hand-drawn cells (IoU, 1 px outline gaps closed), the best of the five
candidates (oracle, what a person picking from the contact sheet can reach),
the machine-made cells (:func:`lociseg.annotate.propagate_cells`) vs the
hand-drawn cells (F1@0.5 and mean matched IoU, pooled over the fields),
beside the nearest-point (Voronoi) split of the same foreground, and
per-image time of points, candidates and cells. Prints a Markdown table.

Usage::

    python benchmarks/bench_annotate.py [--splits train test] [--limit N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time

import numpy as np


def run_split(split: str, limit: int | None) -> dict:
    from lociseg.annotate import (
        annotation_report,
        choose_foreground,
        detect_points,
        foreground_candidates,
        gt_union,
        partition_foreground,
        propagate_cells,
    )
    from lociseg.data import load_dataset
    from lociseg.metrics import aggregate, evaluate_image

    cells = load_dataset("bbbc018", split=split, channels=["DNA", "actin"])
    nuclei = load_dataset("bbbc018:nuclei", split=split, channels=["DNA"])
    names = cells.names[:limit] if limit else cells.names
    tp = npts = ngt = 0
    ious, oracle, t_pts, t_fg, t_cells = [], [], [], [], []
    scored: dict[str, list] = {"cells": [], "voronoi": []}
    for name in names:
        s = cells[name]
        t0 = time.perf_counter()
        pts = detect_points(s.image[0])
        t1 = time.perf_counter()
        cands = foreground_candidates(s.image[1])
        k, _ = choose_foreground(cands, pts)
        t2 = time.perf_counter()
        cells_img = propagate_cells(cands[k], pts, s.image[0], s.image[1])
        t3 = time.perf_counter()
        t_pts.append(t1 - t0)
        t_fg.append(t2 - t1)
        t_cells.append(t3 - t2)
        scored["cells"].append(evaluate_image(s.labels, cells_img, thresholds=(0.5,)))
        scored["voronoi"].append(evaluate_image(s.labels, partition_foreground(cands[k], pts), thresholds=(0.5,)))
        rep = annotation_report(pts, cands[k], gt_nuclei=nuclei[name].labels, gt_cells=s.labels)
        tp += round(rep["point_precision"] * rep["n_points"]) if rep["n_points"] else 0
        npts += rep["n_points"]
        ngt += rep["n_gt"]
        ious.append(rep["fg_iou"])
        gt = gt_union(s.labels)
        oracle.append(max((c & gt).sum() / (c | gt).sum() for c in cands))
    pooled = {k: aggregate(v) for k, v in scored.items()}
    return {
        "split": split,
        "n": len(names),
        "precision": tp / max(npts, 1),
        "recall": tp / max(ngt, 1),
        "iou": float(np.mean(ious)),
        "iou_oracle": float(np.mean(oracle)),
        **{
            f"{k}_{m}": float(pooled[k][key])
            for k in pooled
            for m, key in (("f1", "f1_50"), ("iou", "mean_matched_iou_50"))
        },
        "t_points": float(np.median(t_pts)),
        "t_fg": float(np.median(t_fg)),
        "t_cells": float(np.median(t_cells)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="+", default=["train", "test"])
    ap.add_argument("--limit", type=int, default=None, help="first N fields per split")
    args = ap.parse_args()
    rows = [run_split(s, args.limit) for s in args.splits]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"Date {dt.date.today()}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other jobs), OMP_NUM_THREADS={threads}; command: python {' '.join(sys.argv)}\n"
    )
    print(
        "| split | fields | point precision | point recall | foreground IoU (auto) | IoU (best of 5) "
        "| cells F1@0.5 (matched IoU) | Voronoi split F1@0.5 (matched IoU) "
        "| s/image points | s/image foreground (5 cuts + choice) | s/image cells |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['split']} | {r['n']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['iou']:.3f} "
            f"| {r['iou_oracle']:.3f} | {r['cells_f1']:.3f} ({r['cells_iou']:.3f}) "
            f"| {r['voronoi_f1']:.3f} ({r['voronoi_iou']:.3f}) "
            f"| {r['t_points']:.3f} | {r['t_fg']:.3f} | {r['t_cells']:.3f} |"
        )


if __name__ == "__main__":
    main()

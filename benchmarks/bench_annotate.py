"""Quality and speed of the machine annotations on BBBC018.

For every labelled field of the chosen splits: DoG points vs the hand-drawn
nuclei (precision / recall, a point matches the nucleus it falls inside,
one-to-one), the automatically chosen graph-cut foreground vs the union of
the hand-drawn cells (IoU, 1 px outline gaps closed), the best of the five
candidates (oracle, what a person picking from the contact sheet can reach)
and per-image time of points and candidates. Prints a Markdown table.

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
    )
    from lociseg.data import load_dataset

    cells = load_dataset("bbbc018", split=split, channels=["DNA", "actin"])
    nuclei = load_dataset("bbbc018:nuclei", split=split, channels=["DNA"])
    names = cells.names[:limit] if limit else cells.names
    tp = npts = ngt = 0
    ious, oracle, t_pts, t_fg = [], [], [], []
    for name in names:
        s = cells[name]
        t0 = time.perf_counter()
        pts = detect_points(s.image[0])
        t1 = time.perf_counter()
        cands = foreground_candidates(s.image[1])
        k, _ = choose_foreground(cands, pts)
        t2 = time.perf_counter()
        t_pts.append(t1 - t0)
        t_fg.append(t2 - t1)
        rep = annotation_report(pts, cands[k], gt_nuclei=nuclei[name].labels, gt_cells=s.labels)
        tp += round(rep["point_precision"] * rep["n_points"]) if rep["n_points"] else 0
        npts += rep["n_points"]
        ngt += rep["n_gt"]
        ious.append(rep["fg_iou"])
        gt = gt_union(s.labels)
        oracle.append(max((c & gt).sum() / (c | gt).sum() for c in cands))
    return {"split": split, "n": len(names), "precision": tp / max(npts, 1), "recall": tp / max(ngt, 1),
            "iou": float(np.mean(ious)), "iou_oracle": float(np.mean(oracle)),
            "t_points": float(np.median(t_pts)), "t_fg": float(np.median(t_fg))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="+", default=["train", "test"])
    ap.add_argument("--limit", type=int, default=None, help="first N fields per split")
    args = ap.parse_args()
    rows = [run_split(s, args.limit) for s in args.splits]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"Date {dt.date.today()}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(shared with other jobs), OMP_NUM_THREADS={threads}; command: python {' '.join(sys.argv)}\n")
    print("| split | fields | point precision | point recall | foreground IoU (auto) | IoU (best of 5) "
          "| s/image points | s/image foreground (5 cuts + choice) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {r['n']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['iou']:.3f} "
              f"| {r['iou_oracle']:.3f} | {r['t_points']:.3f} | {r['t_fg']:.3f} |")


if __name__ == "__main__":
    main()

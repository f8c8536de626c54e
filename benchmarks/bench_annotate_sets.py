"""Machine annotations on every labelled two-channel data set, old and new scale rules.

For each set (BBBC018 train fields, Aitslab U2OS train fields) and each rule:

* ``fixed23``: every image annotated at the BBBC018 cell diameter (23 px),
  the default before the nucleus scale was measured;
* ``auto``: the scale measured on each image's nuclear channel
  (:func:`lociseg.annotate.estimate_cell_scale`), foreground picked by the
  older points rule;
* ``auto+level``: that scale and the foreground candidate nearest the
  stain's own level (:func:`lociseg.annotate.foreground_level`), the default;

pooled point precision / recall against the hand-drawn nuclei, foreground
IoU against the union of the hand-drawn cells, and the machine-made cells'
F1 at IoU 0.5 and 0.75 (per-image values averaged), plus seconds per image.
No label is used to make the annotations. Prints a Markdown table; ``--json``
saves the rows.

Usage::

    python benchmarks/bench_annotate_sets.py [--sets bbbc018@train aitslab@train] [--rules fixed23 auto auto+level] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lociseg.annotate import annotate_image, annotation_report, estimate_cell_scale
from lociseg.data import load_dataset

CHANNELS = {"bbbc018": (["DNA", "actin"], "bbbc018:nuclei"), "aitslab": (["nucleus", "cell"], "aitslab:nuclei")}


def run(spec: str, rule: str, limit: int | None) -> dict:
    base, _, split = spec.partition("@")
    channels, nuclei_spec = CHANNELS[base]
    ds = load_dataset(spec, channels=channels)
    nuc = load_dataset(f"{nuclei_spec}@{split}" if split else nuclei_spec, channels=channels[:1])
    n = len(ds) if limit is None else min(limit, len(ds))
    reps, secs, diams = [], [], []
    for i in range(n):
        s, gt_nuc = ds[i], nuc[i].labels
        t = time.perf_counter()
        d = 23.0 if rule == "fixed23" else estimate_cell_scale(s.image[0])[0]
        ann = annotate_image(s.image[0], s.image[1], diameter=d, rule="level" if rule.endswith("level") else "points")
        secs.append(time.perf_counter() - t)
        diams.append(d)
        reps.append(annotation_report(ann.points, ann.foreground, gt_nuclei=gt_nuc, gt_cells=s.labels, cells=ann.cells))
    mean = {
        k: float(np.nanmean([r[k] for r in reps]))
        for k in ("point_precision", "point_recall", "fg_iou", "cells_f1", "cells_f1_75")
    }
    return {
        "set": spec,
        "rule": rule,
        "images": n,
        "diameter_median": float(np.median(diams)),
        "s_per_image": float(np.median(secs)),
        **mean,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["bbbc018@train", "aitslab@train"])
    ap.add_argument("--rules", nargs="+", default=["fixed23", "auto", "auto+level"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [run(spec, rule, args.limit) for spec in args.sets for rule in args.rules]
    print("| set | rule | images | scale (px) | point P | point R | fg IoU | cells F1@0.5 | cells F1@0.75 | s/image |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['rule']} | {r['images']} | {r['diameter_median']:.1f} | {r['point_precision']:.3f} | "
            f"{r['point_recall']:.3f} | {r['fg_iou']:.3f} | {r['cells_f1']:.3f} | {r['cells_f1_75']:.3f} | "
            f"{r['s_per_image']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

"""Accuracy of a trained model on a data set split: segment every image, score against the labels.

Usage::

    python benchmarks/evaluate_model.py --model runs/cells_tiny --data bbbc018@test \
        --channels actin,DNA --diameter 23 [--json out.json]

``--diameter`` is a number (px, the same for every image), ``auto`` (estimated
per image by the model), ``train`` (the diameter the model was trained at,
from its checkpoint metrics; weak runs estimate it from annotation points),
``annotations:DIR`` (per image, from the machine-made cells of a
``lociseg annotate`` folder of the same images: no label used) or ``gt``
(per image from the test labels themselves: an upper bound for analysis,
never a result). ``--augment`` averages the four flips of each image;
``--overlaps probability`` gives contested pixels to the more confident mask;
``--threshold`` sets the mask probability threshold (default 0.5);
``--no-fill-holes`` keeps the holes of the pasted cells.
Prints a Markdown row: F1@0.5, F1@0.75, DSB-AP@0.5, AP50, AP75, mAP, AFNR (pooled over
images) and seconds per image.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import numpy as np


def _image_diameter(spec: str, sample) -> float:
    """Per-image diameter (px): from the sample's own labels (``gt``) or its machine-made cells."""
    from lociseg.annotate import read_cells
    from lociseg.transforms import diameter_from_labels

    if spec == "gt":
        return diameter_from_labels(sample.labels)
    cells = read_cells(spec.split(":", 1)[1], sample.name)
    if cells is None:
        raise SystemExit(f"{spec}: no machine-made cells for {sample.name} (re-run lociseg annotate)")
    return diameter_from_labels(cells)


def main() -> None:
    from lociseg.predict.paste import OVERLAP_RULES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="data set spec, e.g. bbbc018@test")
    ap.add_argument("--channels", default=None, help="comma-separated names or indices")
    ap.add_argument("--diameter", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--augment", action="store_true", help="average the four flips of each image (test-time augmentation)"
    )
    ap.add_argument(
        "--overlaps",
        default="score",
        choices=OVERLAP_RULES,
        help="who gets a pixel two masks claim: the higher score, or the more confident mask",
    )
    ap.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold")
    ap.add_argument(
        "--no-fill-holes",
        dest="fill_holes",
        action="store_false",
        help="keep the holes of the pasted cells (the default fills them)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    from lociseg.data import load_dataset
    from lociseg.metrics import evaluate_pairs
    from lociseg.predict.api import load_model

    chans = None if args.channels is None else [int(c) if c.isdigit() else c for c in args.channels.split(",")]
    ds = load_dataset(args.data, channels=chans)
    seg = load_model(args.model, device=args.device)
    per_image = None
    if args.diameter == "train":
        d = "train"  # the diameter recorded with the checkpoint (Segmenter.train_diameter)
    elif args.diameter == "auto":
        d = None
    elif args.diameter == "gt" or args.diameter.startswith("annotations:"):
        per_image = args.diameter
    else:
        d = float(args.diameter)
    gts, preds, scores, names = [], [], [], []
    t0 = time.perf_counter()
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    for i in range(n):
        s = ds[i]
        if s.labels is None:
            continue
        if per_image is not None:
            d = _image_diameter(per_image, s)
        labels, table = seg.segment(
            s.image,
            diameter=d,
            augment=args.augment,
            overlaps=args.overlaps,
            threshold=args.threshold,
            fill_holes=args.fill_holes,
        )
        gts.append(s.labels)
        preds.append(labels)
        scores.append(np.asarray(table.score))
        names.append(s.name)
    seconds = (time.perf_counter() - t0) / max(1, len(names))
    rep = evaluate_pairs(gts, preds, scores, names=names)
    r = rep.overall["sum"]
    per = r["per_threshold"]
    f1_75 = float(np.asarray(per["f1"])[int(np.argmin(np.abs(np.asarray(per["thresholds"], float) - 0.75)))])
    row = {
        "date": str(date.today()),
        "model": args.model,
        "data": args.data,
        "diameter": args.diameter,
        "augment": args.augment,
        "overlaps": args.overlaps,
        "threshold": args.threshold,
        "fill_holes": args.fill_holes,
        "images": len(names),
        "f1_50": r["f1_50"],
        "f1_75": f1_75,
        "dsb_ap_50": r["dsb_ap_50"],
        "ap50": r["ap50"],
        "ap75": r["ap75"],
        "map": r["map"],
        "afnr": r["afnr"],
        "s_per_image": seconds,
        "host": f"{platform.processor() or platform.machine()}, torch threads {__import__('torch').get_num_threads()}",
    }
    print(
        "| model | data | diameter | augment | overlaps | images | F1@0.5 | F1@0.75 | DSB-AP@0.5 | AP50 | AP75 | mAP | AFNR | s/image |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {args.data} | {args.diameter} | {'yes' if args.augment else 'no'} | {args.overlaps} | {len(names)} | "
        f"{r['f1_50']:.3f} | {f1_75:.3f} | {r['dsb_ap_50']:.3f} | "
        f"{r['ap50']:.3f} | {r['ap75']:.3f} | {r['map']:.3f} | {r['afnr']:.3f} | {seconds:.2f} |"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(row, fh, indent=2, default=float)


if __name__ == "__main__":
    main()

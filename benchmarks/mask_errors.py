"""Where a model's masks go wrong: borders between touching cells or the edge of the foreground.

Usage::

    python benchmarks/mask_errors.py --model runs/cells_weak45 runs/cells_sup45 \
        --data bbbc018@test --channels actin,DNA --diameter train

Segments every labelled image with each model and pools
:func:`lociseg.metrics.mask_errors` over them: mean IoU of matched cells
that touch another cell vs isolated ones, and the matched cells' pixel
errors as % of their GT area: extra pixels inside another GT cell or on
background, missing pixels held by another predicted cell or by none; and
F1 at IoU 0.1 (the cells are found) beside F1 at IoU 0.5 (and outlined well
enough to count), and for the cells found but outlined poorly (best IoU
0.1-0.5) the median of predicted/GT area (> 1: masks too big for them).
Prints one Markdown row per model, then a second table of what the
unmatched objects are (:func:`lociseg.metrics.error_kinds`: poorly outlined
and missed cells; false positives on background, fragments of one cell,
merges). ``--nuclei DATA`` (the same images' nucleus labels, e.g.
``bbbc018:nuclei@test``) adds how the GT cells that hold two or more
nuclei fare (a detector that finds nuclei tends to split them) and how many
false positives hold the nucleus of a cell nobody outlined (a nucleus in
no GT cell), with the F1@0.5 the model would have if those were not
counted: how much of the gap is missing labels rather than model error.

``--annotations DIR`` (a ``lociseg annotate`` folder for the same images)
adds rows for the no-training baselines: the annotated foreground split
among the annotated points by nearest point
(:func:`lociseg.annotate.partition_foreground`), and the folder's
machine-made cells (:func:`lociseg.annotate.propagate_cells`) where stored.
"""

from __future__ import annotations

import argparse

import numpy as np


def poor_outline_area_ratios(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Predicted/GT area of each GT cell whose best-overlapping prediction has IoU in (0.1, 0.5)."""
    from lociseg.metrics import compute_overlaps

    ov = compute_overlaps(gt, pred)
    order = np.lexsort((ov.iou, ov.gt_index))  # per GT cell, its best pair last
    last = np.r_[ov.gt_index[order][1:] != ov.gt_index[order][:-1], True]
    best = order[last]
    poor = best[(ov.iou[best] > 0.1) & (ov.iou[best] < 0.5)]
    return ov.pred_sizes[ov.pred_index[poor]] / ov.gt_sizes[ov.gt_index[poor]]


def nuclei_per_cell(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Number of nuclei whose point (:func:`lociseg.annotate.weak_from_labels`) falls in each cell,
    over the cells' labels in ascending order."""
    from lociseg.annotate import weak_from_labels

    points, _ = weak_from_labels(nuclei)
    yx = np.clip(np.round(points).astype(int), 0, np.array(cells.shape) - 1)
    owner = cells[yx[:, 0], yx[:, 1]]
    labels = np.unique(cells[cells > 0])
    return np.bincount(owner, minlength=int(cells.max()) + 1)[labels]


def unoutlined_nuclei(gt: np.ndarray, nuclei: np.ndarray, inside: float = 0.25) -> np.ndarray:
    """Label ids of the nuclei that lie in no GT cell (under ``inside`` of their area in cells):
    the nuclei of cells nobody outlined (counts: BENCHMARKS.md, tenth session)."""
    ids, area = np.unique(nuclei[nuclei > 0], return_counts=True)
    in_cells = np.bincount(nuclei[(nuclei > 0) & (gt > 0)], minlength=int(nuclei.max()) + 1)[ids]
    return ids[in_cells < inside * area]


def false_positives_on_unoutlined(fp_labels: np.ndarray, pred: np.ndarray, gt: np.ndarray, nuclei: np.ndarray) -> int:
    """How many of the false positives ``fp_labels`` (:func:`lociseg.metrics.error_kinds`) hold at
    least half of an unoutlined nucleus (:func:`unoutlined_nuclei`): likely real cells."""
    hits = set()
    for k in unoutlined_nuclei(gt, nuclei):
        owners, n = np.unique(pred[nuclei == k], return_counts=True)
        j = int(np.argmax(n))
        if 2 * n[j] >= n.sum():
            hits.add(int(owners[j]))
    return len(hits & set(fp_labels.tolist()))


def pooled_row(name: str, results: list[dict], counts: np.ndarray, ratios: np.ndarray) -> str:
    """One Markdown row from per-image :func:`~lociseg.metrics.mask_errors` results, pooled
    (TP, FP, FN) counts at IoU 0.1 and 0.5 (shape (3, 2)) and poorly outlined cells' area ratios."""
    iou = np.concatenate([r["iou"] for r in results])
    touch = np.concatenate([r["touching"] for r in results])
    area = max(1, sum(r["matched_area"] for r in results))
    pct = {k: 100 * sum(r[k] for r in results) / area for k in ("extra_cell", "extra_bg", "miss_cell", "miss_bg")}
    n_gt = sum(r["n_gt"] for r in results)
    mean = lambda a: float(a.mean()) if a.size else float("nan")  # noqa: E731
    tp, fp, fn = counts
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    ratio = float(np.median(ratios)) if len(ratios) else float("nan")
    cells = [
        f"{f1[0]:.3f}",
        f"{f1[1]:.3f}",
        f"{len(iou)}/{n_gt}",
        f"{mean(iou[touch]):.3f} ({touch.sum()})",
        f"{mean(iou[~touch]):.3f} ({(~touch).sum()})",
        *(f"{pct[k]:.1f}" for k in ("extra_cell", "miss_cell", "extra_bg", "miss_bg")),
        f"{len(ratios)}: {ratio:.2f}",
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


HEADER = (
    "| model | F1@0.1 | F1@0.5 | matched/GT | IoU touching (n) | IoU isolated (n) | extra in other cell % | "
    "missing to other cell % | extra on background % | missing to nothing % | "
    "poorly outlined: median pred/GT area |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=[], nargs="+")
    ap.add_argument("--annotations", default=None, help="lociseg annotate folder: add the Voronoi baseline row")
    ap.add_argument("--data", required=True, help="data set spec, e.g. bbbc018@test")
    ap.add_argument("--channels", default=None, help="comma-separated names or indices")
    ap.add_argument("--diameter", default="train", help="number, 'auto' or 'train'")
    ap.add_argument("--nuclei", default=None, help="nucleus labels of the same images, e.g. bbbc018:nuclei@test")
    args = ap.parse_args()

    from lociseg.annotate import partition_foreground, read_annotation, read_cells
    from lociseg.data import load_dataset
    from lociseg.metrics import ERROR_KINDS, error_kinds, mask_errors, match_instances
    from lociseg.predict.api import load_model

    chans = None if args.channels is None else [int(c) if c.isdigit() else c for c in args.channels.split(",")]
    ds = load_dataset(args.data, channels=chans)
    d = {"auto": None, "train": "train"}[args.diameter] if args.diameter in ("auto", "train") else float(args.diameter)
    nuclei = None if args.nuclei is None else load_dataset(args.nuclei, channels=chans)
    if nuclei is not None and list(nuclei.names) != list(ds.names):
        raise SystemExit(f"--nuclei {args.nuclei} does not hold the images of --data {args.data}")
    print(HEADER)
    kind_rows: list[str] = []

    def row(name: str, predict) -> None:
        results, counts, ratios = [], np.zeros((3, 2)), []
        kinds = dict.fromkeys(ERROR_KINDS, 0)
        multi = dict.fromkeys(("matched", "poor", "missed"), 0)
        unoutlined = 0
        for i in range(len(ds)):
            s = ds[i]
            if s.labels is None:
                continue
            gt, pred = np.asarray(s.labels), predict(s)
            results.append(mask_errors(gt, pred))
            m = match_instances(gt, pred, thresholds=[0.1, 0.5])
            counts += [m.tp, m.fp, m.fn]
            ratios.append(poor_outline_area_ratios(gt, pred))
            k = error_kinds(gt, pred)
            for key in ERROR_KINDS:
                kinds[key] += k[key]
            if nuclei is not None:
                nuc = np.asarray(nuclei[i].labels)
                many = nuclei_per_cell(gt, nuc) >= 2
                for key in multi:
                    multi[key] += int(np.sum(many & (k["gt_kind"] == key)))
                unoutlined += false_positives_on_unoutlined(k["fp_labels"], pred, gt, nuc)
        print(pooled_row(name, results, counts, np.concatenate(ratios)))
        tp, fp, fn = counts[:, 1]
        extra = (
            []
            if nuclei is None
            else [
                "/".join(str(multi[key]) for key in multi),
                f"{unoutlined}: {2 * tp / max(1, 2 * tp + fp - unoutlined + fn):.3f}",
            ]
        )
        kind_rows.append(f"| {name} | " + " | ".join([*(str(kinds[key]) for key in ERROR_KINDS), *extra]) + " |")

    if args.annotations:
        row(
            f"Voronoi of {args.annotations}",
            lambda s: partition_foreground(*read_annotation(args.annotations, s.name)[::-1]),
        )
        cells = {n: read_cells(args.annotations, n) for n in ds.names}
        if all(c is not None for c in cells.values()):
            row(f"machine-made cells of {args.annotations}", lambda s: cells[s.name])
    for model in args.model:
        seg = load_model(model)
        row(model, lambda s, seg=seg: seg.segment(s.image, diameter=d)[0])
    print()
    cols = [
        "GT matched",
        "GT poorly outlined (IoU 0.1-0.5)",
        "GT missed",
        "FP on background",
        "FP fragment of one cell",
        "FP merge",
        "FP other",
    ]
    cols += (
        []
        if nuclei is None
        else ["GT cells with 2+ nuclei: matched/poor/missed", "FP on an unoutlined nucleus: F1@0.5 without them"]
    )
    print("| model | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
    print("\n".join(kind_rows))


if __name__ == "__main__":
    main()

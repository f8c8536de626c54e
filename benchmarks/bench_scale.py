"""Automatic scale against the true diameter, over data sets resampled at several zooms.

Usage::

    python benchmarks/bench_scale.py [--per-set 4] [--zooms 0.33,0.5,1,2,3,4] \
        [--sets bbbc018@test,...] [--json out.json] [--plot fig.png]
    python benchmarks/bench_scale.py --timing [--json out.json]

For every labelled shared test set (a fixed seeded subset of ``--per-set``
images) and every zoom, each image (and its labels, nearest-neighbour) is
resampled by the zoom and segmented twice with the shipped model for its
kind: with ``diameter=None`` (the scale search) and with the true median
equivalent diameter (of the whole field's labels, times the zoom). To bound CPU time, an image is
first cropped (centred) to at most ``--max-side / zoom`` px, so every
resampled image is at most ``--max-side`` px a side (zoom 4 of a 1104 px
field: a 375 px crop). Prints a Markdown table of F1@0.5 (pooled over the
images) with both scales, the median ratio estimated / true diameter and the
median scale confidence, per set and zoom.

``--timing`` instead measures the time the search adds, on one thread: a
512 x 512 crop of a BBBC018 test field and mirror-tiled copies of it
(``--sides``, default 512,4096), ``segment`` with ``diameter=None`` against
``diameter=<the estimate>`` in the same process (best of ``--repeat`` runs
each), and the search alone.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

# (data set spec, shipped model, channels to load)
SETS = {
    "bbbc018@test": ("cells", None),
    "aitslab@test": ("cells", None),
    "bbbc018:nuclei@test": ("nuclei", ("DNA",)),
    "dsb2018-test": ("nuclei", None),
    "koyuncu@test": ("nuclei", None),
    "aitslab-nuclei@test": ("nuclei", None),
    # sets the shipped models were not trained on (issue 32): DNA nuclei of 110 px, phase + nucleus cells,
    # membrane + DAPI T cells (partly labelled: the median of the labelled cells)
    "coelho@test": ("nuclei", None),
    "deepcell@test": ("cells", None),
    "tcells@test": ("cells", None),
}


def resample(image: np.ndarray, labels: np.ndarray, zoom: float, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop to at most ``max_side / zoom`` px a side, then resample image (bilinear) and labels (nearest)."""
    from lociseg.transforms import rescale_image, rescale_labels, scaled_shape

    side = int(max_side / zoom)
    h, w = labels.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    image, labels = image[:, y0 : y0 + side, x0 : x0 + side], labels[y0 : y0 + side, x0 : x0 + side]
    out = rescale_image(image, zoom)
    return out, rescale_labels(labels, scaled_shape(labels.shape, zoom))


def f1_counts(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(tp, fp, fn) at IoU 0.5."""
    from lociseg.metrics.matching import match_instances

    m = match_instances(gt, pred, [0.5])
    return np.array([m.tp[0], m.fp[0], m.fn[0]])


def f1(c: np.ndarray) -> float:
    return float(2 * c[0] / max(1, 2 * c[0] + c[1] + c[2]))


def accuracy(args) -> dict:
    from lociseg import load_dataset
    from lociseg.predict.api import load_model
    from lociseg.transforms import diameter_from_labels

    models = {}
    rows = []
    for spec in args.sets:
        kind, channels = SETS[spec]
        seg = models.setdefault(kind, load_model(kind, device="cpu"))
        if args.scale_range:
            seg.spec.scale_range = args.scale_range
        ds = load_dataset(spec, channels=channels) if channels else load_dataset(spec)
        pick = np.sort(np.random.default_rng(args.seed).choice(len(ds), min(args.per_set, len(ds)), replace=False))
        samples = [ds[int(i)] for i in pick]
        for zoom in args.zooms:
            auto, true = np.zeros(3, int), np.zeros(3, int)
            ratios, conf, diams, t_auto, t_true = [], [], [], 0.0, 0.0
            one_pass, methods = [], []
            for s in samples:
                image = np.asarray(s.image, np.float32)
                image = image if image.ndim == 3 else image[None]
                img, gt = resample(image, np.asarray(s.labels), zoom, args.max_side)
                # the whole field's median, zoomed: a small crop's own median counts the cells it cuts
                d = diameter_from_labels(s.labels) * zoom
                diams.append(d)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pa, ta = seg.segment(img)
                t1 = time.perf_counter()
                pt, _ = seg.segment(img, diameter=d)
                t2 = time.perf_counter()
                t_auto, t_true = t_auto + t1 - t0, t_true + t2 - t1
                auto += f1_counts(gt, pa)
                true += f1_counts(gt, pt)
                ratios.append(ta.meta["diameter_used"] / d)
                one_pass.append(ta.meta.get("diameter_one_pass", float("nan")) / d)
                methods.append(ta.meta.get("scale_search", {}).get("method"))
                conf.append(ta.meta.get("scale_confidence", float("nan")))
            row = dict(
                set=spec,
                model=kind,
                zoom=zoom,
                images=[s.name for s in samples],
                f1_auto=f1(auto),
                f1_true=f1(true),
                ratio_median=float(np.median(ratios)),
                error_median=float(np.median(np.abs(np.array(ratios) - 1))),
                worst=float(np.max(np.maximum(ratios, 1 / np.array(ratios)))),
                ratios=ratios,
                one_pass_ratios=one_pass,
                methods=methods,
                confidence_median=float(np.median(conf)),
                true_diameter_median=float(np.median(diams)),
                seconds_auto=t_auto,
                seconds_true=t_true,
            )
            rows.append(row)
            print(
                f"| {spec} | {zoom:g} | {row['true_diameter_median']:.1f} | {row['f1_auto']:.3f} | {row['f1_true']:.3f} | "
                f"{row['f1_auto'] - row['f1_true']:+.3f} | {row['ratio_median']:.2f} | {100 * row['error_median']:.1f} % | "
                f"{row['worst']:.2f} | {row['confidence_median']:.2f} | {t_auto / t_true:.2f} |",
                flush=True,
            )
    return {"rows": rows}


def estimates(args) -> dict:
    """Estimated against true diameter of every test field at each zoom: the one-pass size model and the ladder."""
    from lociseg import load_dataset
    from lociseg.predict.api import load_model
    from lociseg.predict.autoscale import estimate_scale
    from lociseg.transforms import diameter_from_labels

    models, rows = {}, []
    for spec in args.sets:
        kind, channels = SETS[spec]
        seg = models.setdefault(kind, load_model(kind, device="cpu"))
        ds = load_dataset(spec, channels=channels) if channels else load_dataset(spec)
        for zoom in args.zooms:
            true, est, ladder, secs, secs_ladder = [], [], [], 0.0, 0.0
            for i in range(min(len(ds), args.fields or len(ds))):
                s = ds[i]
                image = np.asarray(s.image, np.float32)
                image = image if image.ndim == 3 else image[None]
                d = diameter_from_labels(np.asarray(s.labels)) * zoom
                if not np.isfinite(d):
                    continue
                img, _ = resample(image, np.asarray(s.labels), zoom, args.max_side)
                bounds = seg.percentiles(img)
                t0 = time.perf_counter()
                e = estimate_scale(seg, img, bounds)
                secs += time.perf_counter() - t0
                true.append(d)
                est.append(e.diameter)
                if args.ladder:
                    t0 = time.perf_counter()
                    ladder.append(seg.search_scale_window(img, bounds).diameter)
                    secs_ladder += time.perf_counter() - t0
            true, est = np.array(true), np.array(est)
            ratio = est / true
            row = dict(
                set=spec,
                model=kind,
                zoom=zoom,
                fields=len(true),
                true_median=float(np.median(true)),
                error_median=float(np.median(np.abs(ratio - 1))),
                worst=float(np.nanmax(np.maximum(ratio, 1 / ratio))),
                ratios=ratio.tolist(),
                seconds=secs / len(true),
            )
            if args.ladder:
                lr = np.array(ladder) / true
                row.update(
                    ladder_error_median=float(np.median(np.abs(lr - 1))),
                    ladder_worst=float(np.nanmax(np.maximum(lr, 1 / lr))),
                    ladder_seconds=secs_ladder / len(true),
                )
            rows.append(row)
            line = (
                f"| {spec} | {zoom:g} | {row['fields']} | {row['true_median']:.1f} | {100 * row['error_median']:.1f} % | "
                f"{row['worst']:.2f} | {1000 * row['seconds']:.0f} ms |"
            )
            if args.ladder:
                line += f" {100 * row['ladder_error_median']:.1f} % | {row['ladder_worst']:.2f} | {1000 * row['ladder_seconds']:.0f} ms |"
            print(line, flush=True)
    return {"rows": rows}


def timing(args) -> dict:
    import torch

    from lociseg import load_dataset
    from lociseg.predict.api import load_model

    torch.set_num_threads(1)
    seg = load_model("cells", device="cpu")
    field = np.asarray(load_dataset("bbbc018@test")[0].image, np.float32)
    out = {}
    for side in args.sides:
        small = field[:, :512, :512]
        reps = -(-side // 512)
        img = np.pad(small, ((0, 0), (0, reps * 512 - 512), (0, reps * 512 - 512)), mode="symmetric")[:, :side, :side]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, table = seg.segment(img)  # warm-up, and the estimate
        d = table.meta["diameter_used"]
        best = {"auto": np.inf, "fixed": np.inf}
        for _ in range(args.repeat):
            for key, diam in (("auto", None), ("fixed", d)):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    seg.segment(img, diameter=diam)
                best[key] = min(best[key], time.perf_counter() - t0)
        t0 = time.perf_counter()  # the search as segment runs it: percentiles, then the central window only
        seg.search_scale_window(img, seg.percentiles(img))
        search = time.perf_counter() - t0
        out[str(side)] = {"diameter": d, **best, "search": search, "overhead": best["auto"] / best["fixed"] - 1}
        print(
            f"{side}^2: fixed {best['fixed']:.2f} s, automatic {best['auto']:.2f} s, overhead {100 * out[str(side)]['overhead']:.0f} %"
            f" (search alone {search:.2f} s; diameter {d:.1f} px)",
            flush=True,
        )
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    sets = list(dict.fromkeys(r["set"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(2.2 * len(sets), 2.4), sharey=True, dpi=90)
    for ax, spec in zip(np.atleast_1d(axes), sets):
        rs = [r for r in rows if r["set"] == spec]
        z = [r["zoom"] for r in rs]
        ax.plot(z, [r["f1_true"] for r in rs], "o-", label="true diameter", color="0.5")
        ax.plot(z, [r["f1_auto"] for r in rs], "s--", label="automatic", color="C1")
        ax.set_xscale("log")
        ax.set_xticks(z, [f"{v:g}" for v in z], fontsize=6)
        ax.minorticks_off()
        ax.set_title(spec, fontsize=7)
        ax.set_xlabel("zoom", fontsize=7)
        ax.tick_params(labelsize=6)
    np.atleast_1d(axes)[0].set_ylabel("F1@0.5", fontsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=lambda s: s.split(","), default=list(SETS))
    ap.add_argument("--zooms", type=lambda s: [float(v) for v in s.split(",")], default=[0.33, 0.5, 1, 2, 3, 4])
    ap.add_argument("--per-set", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-side", type=int, default=1500)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--estimate", action="store_true", help="diameter estimates only, every test field (--fields)")
    ap.add_argument("--fields", type=int, help="--estimate: at most this many fields per set")
    ap.add_argument("--ladder", action="store_true", help="--estimate: the ladder search too")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale-range", type=lambda s: [float(v) for v in s.split(",")], help="override input.scale_range")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--sides", type=lambda s: [int(v) for v in s.split(",")], default=[512, 4096], help="--timing image sides"
    )
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.timing:
        result = timing(args)
    elif args.estimate:
        head = "| set | zoom | fields | true d (px) | median error | worst ratio | time |"
        print(head + (" ladder median error | ladder worst | ladder time |" if args.ladder else ""))
        print("|---" * (7 + 3 * args.ladder) + "|")
        result = estimates(args)
    else:
        print(
            "| set | zoom | true d (px) | F1@0.5 auto | F1@0.5 true d | diff | est/true d | median error | worst | "
            "confidence | time auto / true d |"
        )
        print("|---" * 11 + "|")
        result = accuracy(args)
        if args.plot:
            plot(result, args.plot)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result}, f, indent=1)


if __name__ == "__main__":
    main()

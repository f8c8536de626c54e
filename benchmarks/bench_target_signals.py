"""How well label-free signals rank cell outlines by their true IoU, and what the per-cell target rule gives.

Every labelled two-channel set is treated as unlabelled: per image, the
machine annotation (:func:`lociseg.annotate.annotate_image` at the measured
nucleus scale) and the start model's cells
(:func:`lociseg.predict.selftrain.cells_from_model`, flip averaging, its own
scale estimate) are made exactly as ``lociseg adapt`` makes them, and one more
view for the ``stable`` signal (the model on the image flipped along both
axes, one pass at the same scale, flipped back). Then, with
the labels only to score:

1. **Signal power.** For every outline of either source, each signal of
   :func:`lociseg.annotate.evidence.outline_evidence` against the outline's
   true IoU (best IoU with a labelled cell): Spearman rank correlation and the
   AUC of telling IoU >= 0.75 from below. For the cells both sources found
   (IoU >= 0.5), ``pick``: how often the outline with the higher signal is
   the one with the higher true IoU (ties left out).
2. **Targets.** F1@0.5 / F1@0.75 of the model's cells, the machine cells,
   the merges (``model+machine``, ``machine+model``, ``auto``) and the
   per-cell choice (:func:`~lociseg.annotate.evidence.choose_targets`).
3. **Quality estimate.** Spearman correlation, across all images, of
   :func:`~lociseg.annotate.evidence.quality_estimate` with the true
   per-image F1@0.5, for the model's cells, the machine cells and the targets.

Sets with partial labels (``meta["partial_labels"]``, only some cells drawn)
are scored only on the labelled cells: outlines and predicted cells that
touch no labelled cell are left out.

Usage::

    python benchmarks/bench_target_signals.py --sets bbbc018@test aitslab@test --cache /tmp/signals --json a.json
    python benchmarks/bench_target_signals.py --sets deepcell tcells --per-group 1 --by-group --json b.json
    python benchmarks/bench_target_signals.py --pool a.json b.json   # the quality estimate over both runs' images
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from lociseg.annotate import annotate_image, estimate_cell_scale, merge_cells
from lociseg.annotate.evidence import (
    SIGNALS,
    best_iou,
    choose_targets,
    outline_evidence,
    quality_estimate,
    stain_maps,
)
from lociseg.data import load_dataset
from lociseg.metrics import match_instances
from lociseg.models.pretrained import resolve_model
from lociseg.predict.api import load_model
from lociseg.predict.selftrain import cells_from_model

#: (nucleus, cytoplasm) channel names per base set.
CHANNELS = {
    "bbbc018": ["DNA", "actin"],
    "aitslab": ["nucleus", "cell"],
    "deepcell": ["nucleus", "phase"],
    "tcells": ["DAPI", "membrane"],
}


#: Per-cell target rules compared (keyword arguments of choose_targets); ``{}`` is the shipped default.
VARIANTS = {
    "auto, all singles": {"lead": "auto", "need_nucleus": False, "max_size_ratio": None},
    "evidence (before 2026-12-07: agreement lead)": {"lead": "auto", "max_size_ratio": None},
    "agreement lead, size<=3x": {"lead": "auto"},
    "pairs by edge": {"lead": "auto", "pairs": "edge", "max_size_ratio": None},
    "pairs by contrast": {"lead": "auto", "pairs": "contrast", "max_size_ratio": None},
    "pairs mean shape": {"lead": "auto", "pairs": "mean", "max_size_ratio": None},
    "lead plausible, any size": {"max_size_ratio": None},
    "evidence (lead plausible, size<=3x)": {},
    "pairs by stable": {"lead": "auto", "pairs": "stable", "max_size_ratio": None},
    "lead plausible, pairs by stable": {"pairs": "stable"},
    "lead plausible without the stability check, size<=3x": {"views": ()},
}


#: The rule ``lociseg adapt --targets evidence`` uses (choose_targets' defaults).
SHIPPED = next(k for k, v in VARIANTS.items() if not v)


def _channels(spec: str) -> list[str]:
    return CHANNELS[spec.split("@")[0].split(":")[0]]


def prepare(spec: str, model: str, cache: Path, limit: int | None, per_group: int | None = None) -> list[dict]:
    """Per image: image (nucleus, cytoplasm), labels, machine cells and points, model cells (cached as .npz)."""
    ds = load_dataset(spec, channels=_channels(spec))
    names = list(ds.names)
    if per_group:  # the first images of each group (cell line, field), in the set's order
        seen: dict[str, int] = {}
        for n in list(names):
            g = str(ds[n].meta.get("group", ""))
            seen[g] = seen.get(g, 0) + 1
            if seen[g] > per_group:
                names.remove(n)
    seg = load_model(str(resolve_model(model)) if not Path(model).exists() else model)
    wanted = [c.lower() for c in seg.spec.channels]
    order = [1, 0] if wanted and wanted[0] not in ("dna", "nucleus", "dapi") else [0, 1]
    out = []
    for name in names[:limit]:
        s = ds[name]
        f = cache / f"{spec.replace('@', '_').replace(':', '_')}_{name}.npz"
        if f.is_file():
            z = np.load(f)
            rec = {k: z[k] for k in z.files}
        else:
            img = s.image
            d, _ = estimate_cell_scale(img[0])
            ann = annotate_image(img[0], img[1], diameter=d)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                own, used = cells_from_model(img, seg, channels=order)
                # a second view for the ``stable`` signal: the flipped image, one pass, at the same scale
                flipped, _ = cells_from_model(
                    np.ascontiguousarray(img[:, ::-1, ::-1]), seg, channels=order, diameter=used, augment=False
                )
            rec = {
                "image": img,
                "labels": s.labels.astype(np.int32),
                "machine": ann.cells.astype(np.int32),
                "points": ann.points.astype(np.float32),
                "model": own.astype(np.int32),
                "view": np.ascontiguousarray(flipped[::-1, ::-1]).astype(np.int32),
                "diameter": np.float64(d),
            }
            np.savez_compressed(f, **rec)
        rec.update(name=name, group=str(s.meta.get("group", "")), partial=bool(s.meta.get("partial_labels", False)))
        out.append(rec)
    return out


def _labelled_only(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` without the cells that touch no labelled cell (partial labels: those are not scored)."""
    touch = np.unique(pred[gt > 0])
    return np.where(np.isin(pred, touch[touch > 0]), pred, 0)


def f1(gts: list, preds: list) -> tuple[float, float]:
    """Pooled F1 at IoU 0.5 and 0.75."""
    tp = np.zeros(2)
    n_gt = n_pred = 0
    for g, p in zip(gts, preds, strict=True):
        m = match_instances(g, p, thresholds=[0.5, 0.75])
        tp += np.asarray(m.tp, float)
        n_gt += m.n_gt
        n_pred += m.n_pred
    return tuple(float(2 * t / max(1, n_gt + n_pred)) for t in tp)


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney), NaN with one class only."""
    from scipy.stats import rankdata

    pos, n = positive.sum(), len(positive)
    if pos == 0 or pos == n:
        return float("nan")
    r = rankdata(score)
    return float((r[positive].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)))


def per_image(rec: dict) -> dict:
    """Signals with true IoUs, the targets of each mix and quality estimates of one image."""
    gt, machine, own, pts = rec["labels"], rec["machine"], rec["model"], rec["points"]
    maps = stain_maps(rec["image"][1], float(rec["diameter"]))
    rows = []
    for source, lab, other in (("model", own, machine), ("machine", machine, own)):
        ev = outline_evidence(lab, maps, pts, other, views=[rec["view"]] if "view" in rec else ())
        ids, true_iou, _ = best_iou(lab, gt)
        keep = np.isin(ev["ids"], ids[true_iou > 0]) if rec["partial"] else np.ones(len(ev["ids"]), bool)
        t = dict(zip(ids.tolist(), true_iou.tolist()))
        for k in np.flatnonzero(keep):
            row = {"source": source, "id": int(ev["ids"][k]), "true_iou": t.get(int(ev["ids"][k]), 0.0)}
            row.update({s: float(ev[s][k]) for s in SIGNALS})
            rows.append(row)
    targets = {
        "model": own,
        "machine": machine,
        "model+machine": merge_cells(own, machine),
        "machine+model": merge_cells(machine, own),
    }
    agree = float(match_instances(machine, own, thresholds=[0.5]).f1[0])
    targets["auto"] = targets["model+machine" if agree >= 0.5 else "machine+model"]
    for name, opts in VARIANTS.items():
        kw = {"views": [rec["view"]] if "view" in rec else (), **opts}
        targets[name], _ = choose_targets(own, machine, maps, pts, **kw)
    scored = {k: (_labelled_only(v, gt) if rec["partial"] else v) for k, v in targets.items()}
    quality = {}
    for k, ref in (("model", machine), ("machine", own), ("evidence", machine)):
        key = SHIPPED if k == "evidence" else k
        q = quality_estimate(targets[key], ref, maps, pts)
        if "view" in rec:  # the same estimate with the flipped view's agreement as a fifth check
            q["quality_stable"] = quality_estimate(targets[key], ref, maps, pts, [rec["view"]])["quality"]
        true = float(match_instances(gt, scored[key], thresholds=[0.5]).f1[0])
        quality[k] = {**q, "true_f1": true}
    return {"rows": rows, "targets": scored, "quality": quality, "agree": agree}


def pick_accuracy(rows: list[dict], signal: str, pairs: list[tuple[dict, dict]]) -> float:
    """Of the pairs whose true IoUs differ, the fraction where the higher ``signal`` has the higher true IoU."""
    right = total = 0
    for a, b in pairs:
        if a["true_iou"] == b["true_iou"] or np.isnan(a[signal]) or np.isnan(b[signal]) or a[signal] == b[signal]:
            continue
        total += 1
        right += (a[signal] > b[signal]) == (a["true_iou"] > b["true_iou"])
    return right / total if total else float("nan")


def pairs_of(rows: list[dict], rec_pairs: list[tuple[int, int]]) -> list[tuple[dict, dict]]:
    by = {(r["source"], r["id"]): r for r in rows}
    return [(by[("model", a)], by[("machine", b)]) for a, b in rec_pairs if ("model", a) in by and ("machine", b) in by]


def print_quality(qual: list[dict]) -> None:
    """Spearman correlation of each estimate with the true per-image F1@0.5, across all images given."""
    print(f"\n## Quality estimate vs true per-image F1@0.5 (Spearman across {len({q['set'] for q in qual})} sets)")
    for k in ("model", "machine", "evidence"):
        sel = [q for q in qual if q["labels"] == k]
        for est in ("quality", "quality_stable", "precision", "recall", "agreement"):
            if any(est not in q for q in sel):
                continue
            r = spearmanr([q[est] for q in sel], [q["true_f1"] for q in sel]).statistic
            print(f"{k:14s} {est:10s} rho={r:.3f} (n={len(sel)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["bbbc018@test", "aitslab@test"])
    ap.add_argument("--model", default="cells")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench_target_signals"))
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    ap.add_argument("--per-group", type=int, default=None, help="at most this many images per group")
    ap.add_argument("--by-group", action="store_true", help="report each meta group (cell line) as its own set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--pool", nargs="+", type=Path, default=None, help="only pool the quality rows of these --json files"
    )
    args = ap.parse_args()
    if args.pool:
        print_quality([q for f in args.pool for q in json.loads(f.read_text())["quality"]])
        return
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    from lociseg.annotate.evidence import _matched_pairs

    results, qual = {}, []
    for spec in args.sets:
        t0 = time.perf_counter()
        recs = prepare(spec, args.model, args.cache, args.limit, args.per_group)
        groups: dict[str, list] = {}
        for rec in recs:
            key = f"{spec}:{rec['group']}" if args.by_group and rec["group"] else spec
            groups.setdefault(key, []).append(rec)
        for key, grp in groups.items():
            rows, pairs, targets, gts = [], [], {}, []
            for rec in grp:
                r = per_image(rec)
                rows += r["rows"]
                pairs += pairs_of(r["rows"], _matched_pairs(rec["model"], rec["machine"]))
                gts.append(rec["labels"])
                for k, v in r["targets"].items():
                    targets.setdefault(k, []).append(v)
                for k, q in r["quality"].items():
                    qual.append({"set": key, "image": rec["name"], "labels": k, **q})
            true = np.array([r["true_iou"] for r in rows])
            power = {}
            for s in SIGNALS:
                v = np.array([r[s] for r in rows])
                ok = ~np.isnan(v)
                # size is a distance from the median: smaller is better
                sign = -1.0 if s == "size" else 1.0
                power[s] = {
                    "spearman": float(spearmanr(sign * v[ok], true[ok]).statistic) if ok.sum() > 2 else float("nan"),
                    "auc75": auc(sign * v[ok], true[ok] >= 0.75),
                    "pick": pick_accuracy(rows, s, pairs)
                    if s in ("edge", "contrast", "nuclei", "size", "stable")
                    else None,
                }
            pair_iou = {
                "model": float(np.mean([a["true_iou"] for a, _ in pairs])) if pairs else float("nan"),
                "machine": float(np.mean([b["true_iou"] for _, b in pairs])) if pairs else float("nan"),
                "oracle": float(np.mean([max(a["true_iou"], b["true_iou"]) for a, b in pairs])) if pairs else 0.0,
            }
            for s in ("edge", "contrast", "stable"):
                pair_iou[f"by {s}"] = (
                    float(np.mean([a["true_iou"] if a[s] >= b[s] else b["true_iou"] for a, b in pairs]))
                    if pairs
                    else float("nan")
                )
            results[key] = {
                "images": len(grp),
                "outlines": len(rows),
                "pairs": len(pairs),
                "power": power,
                "pair_iou": pair_iou,
                "targets": {k: f1(gts, v) for k, v in targets.items()},
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(f"\n## {key}: {len(grp)} images, {len(rows)} outlines, {len(pairs)} pairs")
            print("| signal | Spearman vs true IoU | AUC IoU>=0.75 | pair pick |")
            print("|---|---|---|---|")
            for s, p in power.items():
                pk = "" if p["pick"] is None else f"{p['pick']:.3f}"
                print(f"| {s} | {p['spearman']:.3f} | {p['auc75']:.3f} | {pk} |")
            print("pair mean true IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in pair_iou.items()))
            print("| targets | F1@0.5 | F1@0.75 |\n|---|---|---|")
            for k, (a, b) in results[key]["targets"].items():
                print(f"| {k} | {a:.3f} | {b:.3f} |")
    print_quality(qual)
    if args.json:
        args.json.write_text(json.dumps({"sets": results, "quality": qual}, indent=1) + "\n")


if __name__ == "__main__":
    main()

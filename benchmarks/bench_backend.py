"""``segment`` with the torch and the onnx backend, interleaved: time and agreement of the labels.

Usage::

    python benchmarks/bench_backend.py [--model cells] [--sets bbbc018@test,deepcell@test] [--fields 4] \
        [--sides 1024] [--side-diameter 23] [--rounds 3] [--threads 2] [--json out.json]

Each listed set gives its first ``--fields`` fields, segmented at their true
diameter (the field's median label diameter); each ``--sides`` adds the first
BBBC018 test field mirror-tiled to that side, segmented at
``--side-diameter`` (default 23 px, BBBC018's median: the larger image,
tiled by ``segment``). Every round segments every image with both backends, the
order alternating from round to round, so load changes hit both alike; the
load average is recorded at each round. Per image group: the median over
rounds of the summed time per backend, megapixels (input) per second, the
ratio onnx / torch, and how the labels agree (cells matched at IoU 0.5 and
0.9 over the torch cells, share of identical pixels). The one-off cost of
the onnx backend (writing the graph, then loading it from the cache) is
timed before the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

import numpy as np
import torch


def images(args) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Group name -> [(raw image, true diameter)]."""
    from lociseg import load_dataset
    from lociseg.transforms import diameter_from_labels

    groups = {}
    for spec in args.sets:
        ds = load_dataset(spec)
        groups[spec] = [
            (np.asarray(ds[i].image), float(diameter_from_labels(np.asarray(ds[i].labels))))
            for i in range(min(args.fields, len(ds)))
        ]
    image, d = np.asarray(load_dataset("bbbc018@test")[0].image), args.side_diameter
    for side in args.sides:
        reps = -(-side // image.shape[-1])
        big = np.pad(image, ((0, 0), (0, (reps - 1) * image.shape[1]), (0, (reps - 1) * image.shape[2])), "symmetric")
        groups[f"bbbc018 field mirrored to {side}^2"] = [(big[:, :side, :side], d)]
    return groups


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    from lociseg.metrics.matching import match_instances

    m = match_instances(a, b, [0.5, 0.9])
    n = max(1, int(a.max()))
    return {
        "cells_torch": int(a.max()),
        "cells_onnx": int(b.max()),
        "matched_0.5": float(m.tp[0]) / n,
        "matched_0.9": float(m.tp[1]) / n,
        "identical_pixels": float(np.mean(a == b)),
    }


def one_off(model: str) -> dict[str, float]:
    """Seconds to build the onnx Segmenter with an empty graph cache (export), then with the graph cached."""
    from lociseg.predict.api import load_model

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("LOCISEG_CACHE")
        os.environ["LOCISEG_CACHE"] = tmp
        try:
            for key in ("first_load_s", "cached_load_s"):
                t0 = time.perf_counter()
                load_model(model, device="cpu", backend="onnx")
                out[key] = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("LOCISEG_CACHE")
            else:
                os.environ["LOCISEG_CACHE"] = old
    return out


def rounds(args, segs: dict, groups: dict) -> dict:
    times = {g: {b: [] for b in segs} for g in groups}
    labels: dict = {}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = list(segs) if r % 2 == 0 else list(segs)[::-1]
        for g, items in groups.items():
            for backend in order:
                total = 0.0
                for k, (image, d) in enumerate(items):
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        lab, _ = segs[backend].segment(image, diameter=d)
                    total += time.perf_counter() - t0
                    labels.setdefault((g, k, backend), lab)
                times[g][backend].append(total)
        print(
            f"round {r + 1}: load {loads[-1]:.1f}",
            {g: {b: round(v[-1], 2) for b, v in t.items()} for g, t in times.items()},
            flush=True,
        )
    return {"times": times, "labels": labels, "loads": loads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cells")
    ap.add_argument("--sets", type=lambda s: [v for v in s.split(",") if v], default=["bbbc018@test", "deepcell@test"])
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--sides", type=lambda s: [int(v) for v in s.split(",") if v], default=[1024])
    ap.add_argument("--side-diameter", type=float, default=23.0, help="diameter given for the --sides images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lociseg.predict.api import load_model

    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads", flush=True)
    cost = one_off(args.model)
    print(f"onnx backend one-off: {cost}", flush=True)
    segs = {b: load_model(args.model, device="cpu", backend=b) for b in ("torch", "onnx")}
    groups = images(args)
    for items in groups.values():  # warm-up of both backends at each group's first image shape
        for seg in segs.values():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seg.segment(items[0][0], diameter=items[0][1])
    run = rounds(args, segs, groups)
    result = {"args": vars(args), "one_off": cost, "loads": run["loads"], "groups": {}}
    print("\n| images | backend | median s | MP/s | onnx / torch | cells matched IoU 0.5 / 0.9 | identical pixels |")
    print("|---|---|---|---|---|---|---|")
    for g, items in groups.items():
        mp = sum(im.shape[-2] * im.shape[-1] for im, _ in items) / 1e6
        med = {b: float(np.median(v)) for b, v in run["times"][g].items()}
        agree = [agreement(run["labels"][(g, k, "torch")], run["labels"][(g, k, "onnx")]) for k in range(len(items))]
        summary = {key: float(np.mean([a[key] for a in agree])) for key in agree[0]}
        result["groups"][g] = {"megapixels": mp, "median_s": med, "times": run["times"][g], "agreement": agree}
        for b in ("torch", "onnx"):
            tail = (
                f"{med['onnx'] / med['torch']:.2f} | {summary['matched_0.5']:.4f} / {summary['matched_0.9']:.4f} | "
                f"{summary['identical_pixels']:.5f} |"
                if b == "onnx"
                else "1 | | |"
            )
            print(f"| {g} ({len(items)}) | {b} | {med[b]:.2f} | {mp / med[b]:.3f} | {tail}")
    result["load_after"] = os.getloadavg()[0]
    print(f"\nload average per round {[round(v, 1) for v in run['loads']]}, after {result['load_after']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

"""Speed of the instance metrics on a large, crowded label image.

A 2048 x 2048 Voronoi tessellation with ~5,000 cells (5,500 seeds; a 1-pixel gap between
neighbours, plus empty patches) is compared with a perturbed copy: shifted,
some cells dilated or eroded, some dropped, some merged with a neighbour,
some spurious objects added. Times ``match_instances`` +
``ranked_average_precision`` (the median of several runs after a warm-up)
and prints a result line and a Markdown table row.

Usage::

    python benchmarks/bench_metrics.py [--size 2048] [--cells 5500] [--repeats 7] [--append results.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage as ndi


def voronoi_labels(size: int, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells of random seeds, separated by 1-pixel gaps, with ~10 % empty area."""
    seeds = np.zeros((size, size), bool)
    seeds[rng.integers(0, size, n_cells), rng.integers(0, size, n_cells)] = True
    markers, _ = ndi.label(seeds)
    _, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    labels = markers[iy, ix]
    # 1-pixel gaps where the right or lower neighbour belongs to another cell
    edge = np.zeros_like(seeds)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    labels[edge] = 0
    # empty background: drop cells whose seed falls in a few blobs
    holes = ndi.gaussian_filter(rng.random((size // 16, size // 16)), 2) > 0.56
    holes = np.kron(holes, np.ones((16, 16), bool))[:size, :size]
    labels[np.isin(labels, np.unique(labels[holes & seeds]))] = 0
    return labels.astype(np.int32)


def perturb(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift, dilate/erode, drop, merge and add objects, all vectorised."""
    out = np.roll(labels, (1, -1), axis=(0, 1))
    ids = np.unique(out[out > 0])
    grown = ndi.grey_dilation(out, size=3)
    pick = np.isin(grown, rng.choice(ids, len(ids) // 5, replace=False)) & (out == 0)
    out[pick] = grown[pick]  # dilate 20 % into the gaps
    shrunk = ndi.grey_erosion(out, size=5)
    pick = np.isin(out, rng.choice(ids, len(ids) // 5, replace=False))
    out[pick] = np.where(shrunk[pick] == out[pick], out[pick], 0)  # erode another 20 %
    out[np.isin(out, rng.choice(ids, len(ids) // 20, replace=False))] = 0  # drop 5 %
    # merge 5 %: give each chosen cell the id of its right-hand neighbour
    right = np.zeros_like(out)
    right[:, :-3] = out[:, 3:]
    chosen = rng.choice(ids, len(ids) // 20, replace=False)
    mask = np.isin(out, chosen) & (right > 0) & (right != out)
    src, dst = out[mask], right[mask]
    lut = np.arange(out.max() + 1)
    lut[src] = dst
    out = lut[out]
    # spurious small objects in empty space
    n_new = len(ids) // 50
    ys, xs = rng.integers(0, out.shape[0] - 6, n_new), rng.integers(0, out.shape[1] - 6, n_new)
    for k, (y, x) in enumerate(zip(ys, xs)):  # 100 tiny squares; setup only, not timed
        win = out[y : y + 5, x : x + 5]
        if not win.any():
            win[:] = out.max() + 1 + k
    return out


def hardware() -> str:
    model = platform.processor() or "?"
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in info.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores available"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--cells", type=int, default=5500, help="Voronoi seeds; ~8%% fall in empty patches")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--append", help="Markdown file to append the result row to")
    args = parser.parse_args(argv)

    from lociseg.metrics import (
        evaluate_image,
        match_instances,
        ranked_average_precision,
    )

    rng = np.random.default_rng(args.seed)
    gt = voronoi_labels(args.size, args.cells, rng)
    pred = perturb(gt, rng)
    scores = rng.random(int(pred.max()))
    n_gt, n_pred = len(np.unique(gt)) - 1, len(np.unique(pred)) - 1

    def run() -> tuple[float, object, dict]:
        t0 = time.perf_counter()
        m = match_instances(gt, pred)
        ap = ranked_average_precision(gt, pred, scores)
        return time.perf_counter() - t0, m, ap

    run()  # warm-up
    times, m, ap = [], None, None
    for _ in range(args.repeats):
        t, m, ap = run()
        times.append(t)
    t_eval = []
    for _ in range(max(3, args.repeats // 2)):
        t0 = time.perf_counter()
        evaluate_image(gt, pred, scores)
        t_eval.append(time.perf_counter() - t0)
    median, t_e = float(np.median(times)), float(np.median(t_eval))
    hw = hardware()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"match_instances + ranked_average_precision on {args.size}x{args.size}, {n_gt} gt / {n_pred} pred objects: "
        f"median {median:.3f} s over {args.repeats} runs (min {min(times):.3f}, max {max(times):.3f}); "
        f"evaluate_image (all metrics, one overlap pass) median {t_e:.3f} s; "
        f"F1@0.5 {m.f1[0]:.3f}, AP50 {ap['ap50']:.3f}, mAP {ap['map']:.3f}"
    )
    cmd = "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:]))
    row = (
        f"| {dt.date.today().isoformat()} | {args.size}² / {n_gt} objects | {median:.3f} s | {t_e:.3f} s | "
        f"{hw} (OMP_NUM_THREADS={threads}, shared with other jobs) | `{cmd}` |"
    )
    header = (
        "| date | image / objects | match + ranked AP (median) | evaluate_image (median) | hardware | command |\n"
        "|---|---|---|---|---|---|"
    )
    print(header)
    print(row)
    if args.append:
        new = not os.path.exists(args.append)
        with open(args.append, "a") as fh:
            fh.write((header + "\n" if new else "") + row + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

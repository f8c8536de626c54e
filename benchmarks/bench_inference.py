"""Inference benchmark of ``lociseg.predict`` (speed, memory, cell-count dependence, tiling).

Run:  python benchmarks/bench_inference.py --model runs/cells_tiny [--sizes 512,4096] [--repeats 3]

``--model`` is a checkpoint (a trained model gives realistic cell counts),
``lacss-tiny`` / ``lacss-base`` (untrained LACSS of that backbone) or ``unet``. Each case runs in its own
subprocess so the peak resident memory (``resource.getrusage`` max RSS)
belongs to that case alone. Cases:

* speed: ``Segmenter.segment`` on a BBBC018 test field mirrored to each size,
  at model scale (diameter 32: no resampling), model load excluded, one
  warm-up, median of ``--repeats``; megapixels/s of the input image.
* dense vs sparse: the same 2048x2048 canvas with every cell vs with 97% of
  the cells erased to background: time should barely depend on cell count.
* tiled vs untiled: the 14 BBBC018 test fields predicted whole and in
  384-px tiles (overlap 128; the fields are ~712 px at model scale, so 4 tiles each) at diameter 23; fraction of cells matched at
  IoU > 0.9.

Prints a Markdown table with date, hardware and command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _model(name: str):
    import torch

    torch.manual_seed(0)
    from lociseg.models.base import InputSpec

    if name == "unet":
        from lociseg.models.unet import UNetConfig, UNetModel

        return UNetModel(UNetConfig(input=InputSpec(in_channels=1, target_diameter=32)))
    if name in ("lacss-tiny", "lacss-base"):
        from lociseg.models import LacssConfig, LacssModel

        cfg = LacssConfig()
        cfg.backbone.preset = name.split("-")[1]
        return LacssModel(cfg)
    if name == "threshold":
        return _threshold_model()
    from lociseg.predict.api import load_model

    return load_model(name, device="cpu").model


def _threshold_model():
    import torch
    from scipy import ndimage as ndi

    from lociseg.models.base import InputSpec, SegmentationModel
    from lociseg.models.semantic import labels_to_instances

    class Cfg:
        input = InputSpec(in_channels=1, target_diameter=32)

    class Threshold(SegmentationModel):
        config = Cfg()

        def predict_instances(self, image: torch.Tensor):
            return labels_to_instances(ndi.label(image[0, 0].numpy() > 0.5)[0])

    return Threshold()


def _discs(size: int, spacing: int, d: int = 24) -> np.ndarray:
    """Grey image with discs of diameter d on a grid of the given spacing."""
    yy, xx = np.indices((spacing, spacing))
    c = spacing / 2
    cell = ((yy - c) ** 2 + (xx - c) ** 2 <= (d / 2) ** 2).astype(np.uint8) * 190 + 10
    reps = -(-size // spacing)
    return np.tile(cell, (reps, reps))[:size, :size]


def _bbbc018_canvas(size: int, sparse: bool, data_root: str | None) -> np.ndarray:
    """A size x size two-channel image mirrored from a dense BBBC018 field; ``sparse`` erases 97% of the cells."""
    from lociseg.data import load_dataset

    sample = load_dataset("bbbc018@test", root=data_root)[0]
    image = np.asarray(sample.image, np.float32)
    if sparse:
        labels = sample.labels
        ids = np.unique(labels[labels > 0])
        keep = np.isin(labels, ids[::32])
        bg = np.median(image[:, labels == 0], axis=1)[:, None, None]
        image = np.where((labels > 0) & ~keep, bg, image)
    reps = -(-size // image.shape[-1])
    big = np.concatenate(
        [
            np.concatenate([image if (a + b) % 2 == 0 else image[:, ::-1, ::-1] for b in range(reps)], axis=2)
            for a in range(reps)
        ],
        axis=1,
    )
    return big[:, :size, :size]


def case(kind: str, model_name: str, size: int, repeats: int, data_root: str | None = None) -> dict:
    from lociseg.predict.api import Segmenter

    seg = Segmenter(_model(model_name), device="cpu")
    n_ch = seg.model.config.input.in_channels
    if kind == "speed":
        image = _bbbc018_canvas(size, False, data_root)
    elif kind in ("dense", "sparse"):
        image = _bbbc018_canvas(size, kind == "sparse", data_root)
    else:
        raise ValueError(kind)
    image = image[-n_ch:]  # a one-channel (nuclei) model gets the DNA channel
    seg.segment(image[:, : min(size, 256), : min(size, 256)], diameter=32)  # warm-up
    times, cells = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        labels, table = seg.segment(image, diameter=32)
        times.append(time.perf_counter() - t)
        cells = len(table)
    med = float(np.median(times))
    return {
        "case": kind,
        "model": model_name,
        "size": size,
        "seconds": med,
        "mp_per_s": size * size / 1e6 / med,
        "cells": cells,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def tiling_case(model_name: str, data_root: str | None) -> dict:
    """Every BBBC018 test field predicted whole and in 256-px tiles (overlap 128): cells matched at IoU > 0.9."""
    from lociseg.data import load_dataset
    from lociseg.metrics import match_instances
    from lociseg.predict.api import Segmenter

    seg = Segmenter(_model(model_name), device="cpu")
    n_ch = seg.model.config.input.in_channels
    n_whole = n_tiled = matched = 0
    for sample in load_dataset("bbbc018@test", root=data_root):
        image = np.asarray(sample.image)[-n_ch:]
        whole, _ = seg.segment(image, diameter=23)
        tiled, _ = seg.segment(image, diameter=23, tile_size=384, overlap=128)
        m = match_instances(whole, tiled, thresholds=[0.9])
        n_whole += int(whole.max())
        n_tiled += int(tiled.max())
        matched += int(m.tp[0])
    return {
        "case": "tiled-vs-untiled",
        "cells_whole": n_whole,
        "cells_tiled": n_tiled,
        "matched_iou_0.9": matched / max(1, n_whole),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet")
    ap.add_argument("--sizes", default="512,4096")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cell-size", type=int, default=2048, help="image side of the dense/sparse case")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cases", default="speed,dense,sparse,tiling", help="which cases to run")
    ap.add_argument("--_case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_size", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._case:
        out = (
            tiling_case(args.model, args.data_root)
            if args._case == "tiling"
            else case(args._case, args.model, args._size, args.repeats, args.data_root)
        )
        print(json.dumps(out))
        return
    runs = [("speed", int(s)) for s in args.sizes.split(",")] + [
        ("dense", args.cell_size),
        ("sparse", args.cell_size),
        ("tiling", 0),
    ]
    runs = [r for r in runs if r[0] in args.cases.split(",")]
    results = []
    for kind, size in runs:
        model = args.model
        cmd = [
            sys.executable,
            __file__,
            "--_case",
            kind,
            "--_size",
            str(size),
            "--model",
            model,
            "--repeats",
            str(args.repeats),
        ]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(results[-1], file=sys.stderr)
    print(
        f"Date {datetime.date.today()}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"(shared with other jobs), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"command: python benchmarks/bench_inference.py {' '.join(sys.argv[1:])}\n"
    )
    print("| case | model | image | cells | median s | MP/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r["case"] == "tiled-vs-untiled":
            continue
        print(
            f"| {r['case']} | {r['model']} | {r['size']}x{r['size']} | {r['cells']} | {r['seconds']:.2f} | {r['mp_per_s']:.2f} | {r['max_rss_mb']:.0f} |"
        )
    for r in results:
        if r["case"] == "tiled-vs-untiled":
            print(
                f"\nTiled (384 px, overlap 128) vs untiled, 14 BBBC018 test fields, {args.model}: {r['cells_tiled']} vs "
                f"{r['cells_whole']} cells, {100 * r['matched_iou_0.9']:.1f}% matched at IoU > 0.9"
            )


if __name__ == "__main__":
    main()

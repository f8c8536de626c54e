"""Peak memory and time of ``lociseg segment`` on large images, and of COCO export with many objects (issue 20).

Run:  python benchmarks/bench_memory.py --sizes 2048,4096,12000 [--diameter 23] [--code DIR] [--work /tmp/bench_memory]

Segment: a BBBC018 test field (actin, DNA; uint16) mirrored to each size is
written as a TIFF, then ``python -m lociseg segment`` runs on it in a child
process with the shipped ``cells`` model, a fixed ``--diameter`` (no scale
estimate), ``--device cpu`` and one thread (``OMP_NUM_THREADS=1``). The
child's peak resident memory comes from ``os.wait4`` (that child alone) and
includes Python, torch, the model, reading the image and writing the outputs.
``--code DIR`` runs the ``lociseg`` package found in DIR instead (e.g. an
unpacked older commit, to compare).

COCO: the BBBC018 test field's ground-truth cells mirrored to each size
(every copy its own object), then ``labels_to_coco`` (RLE) timed in a child
process with the same ``--code``.

Prints Markdown tables with date, hardware and command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _child_env(code: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    root = code or str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_measured(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    """Run ``cmd``; wall seconds, the child's own peak RSS in MB (``os.wait4``), exit status, output tail."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_memory_{os.getpid()}.log"
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_text()[-1500:]
    log.unlink()
    return wall, usage.ru_maxrss / 1024, proc.returncode, tail


def segment_case(size: int, args, work: Path) -> dict:
    tif = work / f"bbbc018_mirrored_{size}.tif"
    if not tif.exists():  # the mirrored field of the speed benchmark (bench_inference._bbbc018_canvas),
        # made in a child process: a child forked from a parent that held the canvas would report the
        # parent's resident memory as its own peak (Linux carries the high-water mark across exec)
        make = (
            "import sys, numpy as np, tifffile; sys.path.insert(0, sys.argv[1]); "
            "from bench_inference import _bbbc018_canvas; "
            "root = sys.argv[4] if len(sys.argv) > 4 else None; "
            "tifffile.imwrite(sys.argv[2], _bbbc018_canvas(int(sys.argv[3]), False, root).astype(np.uint16), "
            "tile=(512, 512))"  # tiled, as large microscopy TIFFs are (read window by window)
        )
        extra = [args.data_root] if args.data_root else []
        subprocess.run(
            [sys.executable, "-c", make, str(Path(__file__).parent), str(tif), str(size), *extra],
            env=_child_env(args.code),
            check=True,
        )
    out = work / f"seg_{size}"
    cmd = [
        sys.executable,
        "-m",
        "lociseg",
        "segment",
        str(tif),
        "--out",
        str(out),
        "--model",
        "cells",
        "--channels",
        "0,1",
        "--diameter",
        str(args.diameter),
        "--tile-size",
        str(args.tile_size),
        "--device",
        "cpu",
        "--overwrite",
    ]
    wall, peak, rc, tail = _run_measured(cmd, _child_env(args.code))
    if rc != 0:
        raise SystemExit(f"segment failed on {size}x{size} (exit {rc}):\n{tail}")
    meta = json.loads((out / f"{tif.stem}.lociseg.json").read_text())
    return {"size": size, "cells": meta["cells"], "seconds": wall, "peak_rss_mb": peak}


_COCO_CHILD = """
import sys, time, numpy as np
from lociseg.io import labels_to_coco
labels = np.load(sys.argv[1])
t = time.perf_counter()
coco = labels_to_coco({"field": labels}, encoding="rle")
print(len(coco["annotations"]), time.perf_counter() - t)
"""


def coco_case(size: int, args, work: Path) -> dict:
    from scipy import ndimage as ndi

    from lociseg.data import load_dataset

    path = work / f"labels_mirrored_{size}.npy"
    if not path.exists():
        gt = load_dataset("bbbc018@test", root=args.data_root)[0].labels
        reps = -(-size // gt.shape[-1])
        # mirrored copies of the ground truth, relabelled so that each copy's cells are separate objects
        big = np.block([[gt if (a + b) % 2 == 0 else gt[::-1, ::-1] for b in range(reps)] for a in range(reps)])[
            :size, :size
        ]
        edges = np.zeros(big.shape, bool)
        edges[:, 1:] |= big[:, 1:] != big[:, :-1]
        edges[1:, :] |= big[1:, :] != big[:-1, :]
        big = np.where(edges, 0, big)  # cut touching cells apart so that ndi.label separates them
        labels, _ = ndi.label(big > 0)
        np.save(path, labels.astype(np.int32))
    out = subprocess.run(
        [sys.executable, "-c", _COCO_CHILD, str(path)],
        env=_child_env(args.code),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"size": size, "objects": int(out[0]), "seconds": float(out[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2048,4096,12000", help="image sides for segment, comma-separated")
    ap.add_argument("--coco-sizes", default="1024,2048,4096", help="label image sides for COCO export")
    ap.add_argument(
        "--diameter", type=float, default=32.0, help="--diameter passed to segment (32: the model scale, no resampling)"
    )
    ap.add_argument("--tile-size", type=int, default=1024)
    ap.add_argument(
        "--code", default=None, help="folder holding the lociseg package to measure (default: this checkout)"
    )
    ap.add_argument("--work", default="/tmp/bench_memory", help="folder for the mirrored images and outputs")
    ap.add_argument("--data-root", default=os.environ.get("LOCISEG_DATA"))
    ap.add_argument("--skip-segment", action="store_true")
    ap.add_argument("--skip-coco", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, python {platform.python_version()}; "
        f"command: python {' '.join(sys.argv)}\n"
    )
    if not args.skip_segment:
        print("| image | cells | wall s | s per MP | peak RSS MB |\n|---|---|---|---|---|", flush=True)
        for size in (int(s) for s in args.sizes.split(",")):
            r = segment_case(size, args, work)
            print(
                f"| {size}x{size} | {r['cells']:,} | {r['seconds']:.0f} | {r['seconds'] / (size * size / 1e6):.2f} | "
                f"{r['peak_rss_mb']:,.0f} |",
                flush=True,
            )
    if not args.skip_coco:
        print("\n| labels | objects | labels_to_coco s | us per pixel |\n|---|---|---|---|", flush=True)
        for size in (int(s) for s in args.coco_sizes.split(",")):
            r = coco_case(size, args, work)
            print(
                f"| {size}x{size} | {r['objects']:,} | {r['seconds']:.2f} | {r['seconds'] / (size * size) * 1e6:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

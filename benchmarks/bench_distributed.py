"""``lociseg segment --cluster local:2`` against the single-process path: memory, time, agreement.

Two experiments, each a pair of ``lociseg segment`` runs (single process, then
``--cluster local:2``) in subprocesses whose whole process tree is polled
for resident memory (peak RSS of every process):

* one large two-channel image, mirror-tiled from real BBBC018 test fields
  (``--size``, repeatable), stored as a tiled TIFF (read lazily by both paths);
  cells matched at IoU > 0.9 between the two label images;
* a folder of ``--fields`` 512 x 512 fields (the BBBC018 test fields and
  their flips and rotations): outputs compared file by file, throughput.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py --size 4096 --size 8192 --fields 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["-m", "cells", "--diameter", "23", "--device", "cpu"]


def run(args: list[str]) -> dict:
    """Run ``python -m lociseg ARGS``: wall seconds, the peak RSS (MB) of each process of its tree, and the CPU
    seconds of all of them together (sampled every 0.25 s: a load-independent measure of the work done).
    """
    import psutil

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lociseg", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peaks: dict[int, tuple[float, str]] = {}
    cpu: dict[int, float] = {}

    def poll() -> None:
        top = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                break
            for p in tree:
                try:
                    rss = p.memory_info().rss / 2**20
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                    role = (
                        "main"
                        if p.pid == proc.pid
                        else ("worker" if "spawn_main" in " ".join(p.cmdline()) else "helper")
                    )
                except psutil.Error:
                    continue
                if rss > peaks.get(p.pid, (0, ""))[0]:
                    peaks[p.pid] = (rss, role)
            time.sleep(0.25)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    text, _ = proc.communicate()
    wall = time.perf_counter() - t0
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(text[-3000:])
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(sum(cpu.values()), 1),
        "peak_rss_mb": sorted((round(v), r) for v, r in peaks.values())[::-1],
    }


def fields(data_root: Path) -> list[np.ndarray]:
    from lociseg.data import load_dataset

    ds = load_dataset("bbbc018@test", root=data_root)
    return [ds[i].image for i in range(len(ds))]


def mirror_tiled(base: list[np.ndarray], size: int) -> np.ndarray:
    """A (2, size, size) uint16 image of real fields, each flipped to match its neighbours' edges."""
    f = base[0]
    h, w = f.shape[-2:]
    out = np.empty((f.shape[0], size, size), f.dtype)
    k = 0
    for y in range(0, size, h):
        for x in range(0, size, w):
            tile = base[k % len(base)]
            k += 1
            if (y // h) % 2:
                tile = tile[:, ::-1]
            if (x // w) % 2:
                tile = tile[:, :, ::-1]
            out[:, y : y + h, x : x + w] = tile[:, : size - y, : size - x]
    return out


def large(work: Path, base: list[np.ndarray], size: int, block: int) -> dict:
    import tifffile
    import zarr

    from lociseg.io import read_labels
    from lociseg.metrics import match_instances

    d = work / f"large{size}"
    d.mkdir()
    tifffile.imwrite(d / "big.tif", mirror_tiled(base, size), photometric="minisblack", tile=(512, 512))
    single = run(["segment", str(d / "big.tif"), "-o", str(d / "single"), *ARGS])
    cluster = run(
        [
            "segment",
            str(d / "big.tif"),
            "-o",
            str(d / "cluster"),
            *ARGS,
            "--cluster",
            "local:2",
            "--block-size",
            str(block),
        ]
    )
    mp = size * size / 1e6
    res = {"size": size, "megapixels": round(mp, 1), "block_size": block, "single": single, "cluster": cluster}
    res["s_per_mp"] = {"single": round(single["wall_s"] / mp, 2), "cluster": round(cluster["wall_s"] / mp, 2)}
    res["cluster_over_single"] = round(cluster["wall_s"] / single["wall_s"], 2)
    res["cpu_cluster_over_single"] = round(cluster["cpu_s"] / single["cpu_s"], 2)
    res["cluster_seconds"] = json.loads((d / "cluster" / "big.lociseg.json").read_text()).get("seconds")
    crop = min(size, 4096)
    ref = read_labels(d / "single" / "big.tif")[:crop, :crop]
    got = zarr.open_group(str(d / "cluster" / "big.ome.zarr"), mode="r")["labels/cells/0"][:crop, :crop]
    m = match_instances(ref, got, thresholds=[0.9])
    n_ref, n_got = len(np.unique(ref)) - 1, len(np.unique(got)) - 1
    res["match_iou90"] = {
        "crop": crop,
        "cells_single": n_ref,
        "cells_cluster": n_got,
        "matched": int(m.tp[0]),
        "fraction_of_single": round(float(m.tp[0]) / n_ref, 4),
    }
    return res


def many(work: Path, base: list[np.ndarray], n: int) -> dict:
    import tifffile

    d = work / "many"
    (d / "in").mkdir(parents=True)
    variants = [
        lambda a: a,
        lambda a: a[:, ::-1],
        lambda a: a[:, :, ::-1],
        lambda a: np.rot90(a, 1, (1, 2)),
        lambda a: np.rot90(a, 2, (1, 2)),
    ]
    for i in range(n):
        img = variants[(i // len(base)) % len(variants)](base[i % len(base)])
        tifffile.imwrite(d / "in" / f"field{i:03d}.tif", np.ascontiguousarray(img), photometric="minisblack")
    single = run(["segment", str(d / "in"), "-o", str(d / "single"), *ARGS])
    cluster = run(["segment", str(d / "in"), "-o", str(d / "cluster"), *ARGS, "--cluster", "local:2"])
    same = all(
        (d / "single" / f"field{i:03d}{e}").read_bytes() == (d / "cluster" / f"field{i:03d}{e}").read_bytes()
        for i in range(n)
        for e in (".tif", ".csv")
    )
    return {
        "fields": n,
        "single": single,
        "cluster": cluster,
        "fields_per_s": {"single": round(n / single["wall_s"], 3), "cluster": round(n / cluster["wall_s"], 3)},
        "identical_tif_and_csv": same,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, action="append", help="side of the large image (repeatable)")
    ap.add_argument("--block-size", type=int, default=2048)
    ap.add_argument("--fields", type=int, default=200)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("LOCISEG_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--out", type=Path, default=Path("bench_distributed.json"))
    a = ap.parse_args()
    base = fields(a.data)
    results: dict = {"large": [], "many": None}
    sizes = a.size or [4096]
    with tempfile.TemporaryDirectory() as tmp:
        # the first size, then the folder of fields, then the larger sizes (the longest runs last)
        for i, size in enumerate(sizes):
            results["large"].append(large(Path(tmp), base, size, a.block_size))
            print(json.dumps(results["large"][-1]), flush=True)
            a.out.write_text(json.dumps(results, indent=1))
            if i == 0 and a.fields:
                results["many"] = many(Path(tmp), base, a.fields)
                print(json.dumps(results["many"]), flush=True)
                a.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

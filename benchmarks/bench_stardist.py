"""lociseg against StarDist 2D on the same fields: time (interleaved rounds) and F1@0.5.

StarDist lives in its own Python (``tensorflow-cpu`` and ``stardist``, e.g.
``/work/venv-stardist``); this script runs in lociseg's environment and
drives a StarDist worker process (``benchmarks/stardist_worker.py``) in that
Python. Usage::

    # 1. the images of a set's splits, for the other Python
    python benchmarks/bench_stardist.py dump --set bbbc018:nuclei --channels DNA --out /tmp/bbbc018_nuclei.npz
    # 2. train StarDist there (benchmarks/stardist_train.py)
    # 3. interleaved rounds on the test split
    python benchmarks/bench_stardist.py run --data /tmp/bbbc018_nuclei.npz --stardist /tmp/sd/stardist \
        --python /work/venv-stardist/bin/python --model nuclei \
        [--variants torch:given,torch:auto,onnx:given,onnx:auto,onnx:given:2048] [--rounds 3] [--threads 2] [--json out.json]

Each round segments every test field with every variant: lociseg (each
``--variants`` entry ``backend:mode[:tile]``: at the true diameter, the
field's median label diameter, as a user who knows the scale gives it, or
with its automatic scale; with the default or another tile size), and
StarDist (its own percentile normalisation and optimised thresholds); the
order of the variants rotates from round to round. Each call is timed where
it runs (lociseg here, StarDist inside the worker; model loading excluded,
image already in memory), and the load average is recorded at each round.
Reports per variant the median over rounds of the summed time, megapixels
per second, the ratio to StarDist, and F1@0.5 pooled over the fields
(lociseg's matching).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings

import numpy as np


def dump(args) -> None:
    """Write every split's images (C, H, W) and labels into one .npz for the StarDist Python."""
    from lociseg import load_dataset

    arrays: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        spec = f"{args.set}@{name}"
        ds = load_dataset(spec, channels=tuple(args.channels)) if args.channels else load_dataset(spec)
        for i in range(len(ds)):
            s = ds[i]
            image = np.asarray(s.image)
            arrays[f"{name}_image_{i}"] = image if image.ndim == 3 else image[None]
            arrays[f"{name}_labels_{i}"] = np.asarray(s.labels).astype(np.int32)
            arrays[f"{name}_name_{i}"] = np.array(str(s.name))
        arrays[f"{name}_count"] = np.array(len(ds))
        print(f"{spec}: {len(ds)} fields")
    np.savez_compressed(args.out, **arrays)


class StarDistWorker:
    """The StarDist worker process (``stardist_worker.py`` in the other Python); :meth:`segment` times one field there."""

    def __init__(self, args, scratch: str) -> None:
        here = os.path.dirname(os.path.abspath(__file__))
        cmd = [args.python, os.path.join(here, "stardist_worker.py"), "--model", args.stardist, "--data", args.data]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(args.threads)}
        cmd += ["--threads", str(args.threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.scratch = scratch
        while (line := self.proc.stdout.readline()) and line.strip() != "ready":
            if self.proc.poll() is not None:
                raise SystemExit("the StarDist worker stopped before it was ready (see its stderr)")

    def segment(self, index: int) -> tuple[np.ndarray, float]:
        path = os.path.join(self.scratch, f"sd_{index}.npy")
        self.proc.stdin.write(f"{index} {path}\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return np.load(path), float(reply["seconds"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def lociseg_variants(args, fields) -> dict:
    """Variant name -> callable(field index) -> (labels, seconds), one per ``--variants`` entry.

    An entry is ``backend:mode[:tile size]``, mode ``given`` (the field's
    median label diameter) or ``auto`` (lociseg's automatic scale).
    """
    from lociseg.predict.api import load_model
    from lociseg.transforms import diameter_from_labels

    segs, out = {}, {}
    for entry in args.variants:
        backend, mode, *tile = entry.split(":")
        seg = segs.setdefault(backend, load_model(args.model, device="cpu", backend=backend))
        tile_size = int(tile[0]) if tile else 1024

        def run(i, seg=seg, mode=mode, tile_size=tile_size):
            image, truth = fields[i]
            d = diameter_from_labels(truth) if mode == "given" else None
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels, _ = seg.segment(image, diameter=d, tile_size=tile_size)
            return labels, time.perf_counter() - t0

        run(0)  # warm-up
        out[f"lociseg {args.model} ({backend}, {'given d' if mode == 'given' else 'auto scale'}, tile {tile_size})"] = (
            run
        )
    return out


def f1(truths, preds) -> float:
    from lociseg.metrics.matching import match_instances

    tp = fp = fn = 0
    for t, p in zip(truths, preds):
        m = match_instances(t, p, [0.5])
        tp, fp, fn = tp + int(m.tp[0]), fp + int(m.fp[0]), fn + int(m.fn[0])
    return 2 * tp / max(1, 2 * tp + fp + fn)


def run(args) -> None:
    """Interleaved rounds of every variant over the test fields; prints the table, writes --json."""
    import torch

    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    fields = [(data[f"test_image_{i}"], data[f"test_labels_{i}"]) for i in range(int(data["test_count"]))]
    fields = fields[: args.fields or len(fields)]
    with tempfile.TemporaryDirectory() as scratch:
        worker = StarDistWorker(args, scratch)
        variants = {**lociseg_variants(args, fields), "StarDist 2D": worker.segment}
        names = list(variants)
        times = {n: [] for n in names}
        labels: dict = {}
        loads = []
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for name in names[r % len(names) :] + names[: r % len(names)]:
                total = 0.0
                for i in range(len(fields)):
                    lab, sec = variants[name](i)
                    total += sec
                    labels.setdefault((name, i), lab)
                times[name].append(total)
            print(f"round {r + 1}, load {loads[-1]:.1f}:", {n: round(t[-1], 2) for n, t in times.items()}, flush=True)
        worker.close()
    mp = sum(im.shape[-2] * im.shape[-1] for im, _ in fields) / 1e6
    sd = float(np.median(times["StarDist 2D"]))
    print(f"\n{len(fields)} fields, {mp:.2f} MP; load average per round {[round(v, 1) for v in loads]}")
    print("| variant | median s | MP/s | time / StarDist | F1@0.5 |")
    print("|---|---|---|---|---|")
    rows = {}
    for n in names:
        med = float(np.median(times[n]))
        score = f1([t for _, t in fields], [labels[(n, i)] for i in range(len(fields))])
        rows[n] = {"median_s": med, "times": times[n], "mp_per_s": mp / med, "ratio_to_stardist": med / sd, "f1": score}
        print(f"| {n} | {med:.2f} | {mp / med:.3f} | {med / sd:.2f} | {score:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "loads": loads, "megapixels": mp, "rows": rows}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--set", required=True)
    d.add_argument("--channels", type=lambda s: s.split(","))
    d.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--stardist", required=True, help="folder of the StarDist model (basedir/name)")
    r.add_argument("--python", required=True, help="the Python that has stardist")
    r.add_argument("--model", default="nuclei")
    r.add_argument(
        "--variants",
        type=lambda v: v.split(","),
        default=["torch:given", "torch:auto"],
        help="lociseg variants, backend:mode[:tile] (mode given or auto; tile default 1024)",
    )
    r.add_argument("--fields", type=int, default=0, help="at most this many test fields (0: all)")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--json")
    args = ap.parse_args()
    if args.command == "dump":
        dump(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""CPU network path: the dense forward of a shipped model under several execution variants, interleaved.

Usage::

    python benchmarks/bench_cpu_path.py [--model cells] [--sides 512,1024] [--rounds 5] [--threads 2] \
        [--tiles 512,1024] [--json out.json]

Each round runs every variant once on the same normalised BBBC018 field
(mirror-tiled to each side), in turn, so load changes hit all variants alike;
the table gives each variant's median time over the rounds as a ratio to
the default path (eager, channels-last, float32) and its largest output
difference from it. Variants: eager contiguous (NCHW), eager channels-last
(the default), ``torch.compile`` of the channels-last model, ONNX Runtime on
the exported graph (``lociseg.export.export_onnx``), and bf16 autocast only
where ``/proc/cpuinfo`` lists ``avx512_bf16`` or ``amx_bf16`` (skipped
otherwise, and said so). ``--tiles`` also times ``Segmenter.segment`` at a
given diameter with each tile size on the 1,024 px image. The load average
is printed before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def field(seg, side: int) -> np.ndarray:
    from lociseg import load_dataset

    img = np.asarray(load_dataset("bbbc018@test")[0].image, np.float32)
    reps = -(-side // img.shape[-1])
    img = np.pad(
        img, ((0, 0), (0, reps * img.shape[1] - img.shape[1]), (0, reps * img.shape[2] - img.shape[2])), "symmetric"
    )
    return img[:, :side, :side]


def variants(model: torch.nn.Module, onnx_path: Path, threads: int) -> dict:
    """name -> callable(x NCHW float tensor) -> tuple of numpy outputs."""
    import onnxruntime as ort

    # the Segmenter's model is channels-last already: convert back, or NCHW input still runs channels-last
    eager = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    last = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
    compiled = torch.compile(last)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def torch_run(net, channels_last=False, bf16=False):
        def run(x):
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
                return tuple(t.float().numpy() for t in net(xx))

        return run

    out = {
        "eager NCHW": torch_run(eager),
        "eager channels-last (default)": torch_run(last, True),
        "torch.compile channels-last": torch_run(compiled, True),
        "ONNX Runtime": lambda x: tuple(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})),
    }
    if cpu_has_bf16():
        out["bf16 autocast channels-last"] = torch_run(last, True, True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cells")
    ap.add_argument("--sides", type=lambda s: [int(v) for v in s.split(",")], default=[512, 1024])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiles", type=lambda s: [int(v) for v in s.split(",")], default=[])
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lociseg.export.model import export_onnx
    from lociseg.predict.api import load_model

    seg = load_model(args.model, device="cpu")
    load0 = os.getloadavg()
    print(f"load average {load0[0]:.2f}; bf16 in /proc/cpuinfo: {cpu_has_bf16()}", flush=True)
    result = {"load_before": load0, "bf16": cpu_has_bf16(), "sides": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(copy.deepcopy(seg.model).float(), Path(tmp) / "m.onnx")
        runs = variants(seg.model, path, args.threads)
        for side in args.sides:
            x = torch.from_numpy(seg.normalize(field(seg, side)))[None].contiguous()
            ref = runs["eager channels-last (default)"](x)
            for run in runs.values():  # warm-up (and compilation) outside the timing
                run(x)
            times = {k: [] for k in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    t0 = time.perf_counter()
                    run(x)
                    times[name].append(time.perf_counter() - t0)
            base = float(np.median(times["eager channels-last (default)"]))
            rows = {}
            print(f"\n{side}^2 | variant | median s | time / default | max output difference |")
            for name, run in runs.items():
                diff = max(float(np.abs(a - b).max()) for a, b in zip(run(x), ref))
                med = float(np.median(times[name]))
                rows[name] = {"median_s": med, "ratio": med / base, "max_diff": diff}
                print(f"| {name} | {med:.3f} | {med / base:.2f} | {diff:.2e} |", flush=True)
            result["sides"][str(side)] = rows
    if args.tiles:
        import warnings

        img = field(seg, 1024)
        times = {t: [] for t in args.tiles}
        for _ in range(args.rounds):
            for t in args.tiles:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    seg.segment(img, diameter=23.0, tile_size=t)
                times[t].append(time.perf_counter() - t0)
        base = float(np.median(times[args.tiles[-1]]))
        print("\ntile size | median s (segment, 1024^2, d 23 px) | ratio to the last |")
        for t in args.tiles:
            print(f"| {t} | {np.median(times[t]):.2f} | {np.median(times[t]) / base:.2f} |")
        result["tiles"] = {str(t): float(np.median(v)) for t, v in times.items()}
    result["load_after"] = os.getloadavg()
    print(f"load average after {result['load_after'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""How the shipped models hold up when a lab images differently: perturbations of the raw image at test time.

Usage::

    python benchmarks/bench_robustness.py [--per-set 4] [--max-side 768] [--sets bbbc018@test,...] \
        [--perturbations none,offset,...] [--model CHECKPOINT] [--json out.json]

For every labelled shared test set (a fixed seeded subset of ``--per-set``
images, each centre-cropped to at most ``--max-side`` px a side) and every
perturbation, the raw image is perturbed, segmented with the shipped model for
its kind (or ``--model``) at the TRUE median diameter (of the crop's labels; twice that for the
2x field), so scale errors do not mix in, and scored against the labels.
Prints a Markdown table of F1@0.5 (pooled over the images), set x
perturbation. Per channel, ``floor`` is the 1st percentile, ``range`` the 99.8th
minus the 1st (the normalisation's own percentiles):

``none``
    the image as stored.
``offset``
    a grey camera floor: ``+ range`` (float; normalisation should remove it).
``12bit``
    rescaled to 0..4095, rounded, stored as uint16 (12-bit data in 16 bits).
``8bit``
    requantised to 256 levels between the channel's min and max (as float).
``dim``
    a dim stain: ``floor + 0.2 * (image - floor)`` plus read noise of 2 % of
    the original range, rounded to integers (the camera's grid).
``saturated``
    clipped at the channel's 90th percentile (on a sparse field, where cells
    cover under 10 % of it, that flattens every cell: nothing can recover it).
``sat-cells``
    clipped at the median of the channel's pixels inside labelled cells (half
    of the stained pixels saturate; the cells stay bright blobs).
``uneven``
    uneven illumination: the signal above the floor times a smooth field
    (tilt and vignette, darkest point 0.4).
``noise``
    Poisson-Gaussian noise: 30 photons per range, read noise 3 % of the range.
``blank2`` / ``absent2`` (two-channel models)
    the second channel replaced by camera noise around its floor (a stain
    that failed) / by zeros (a channel not acquired).
``2x``
    the field upsampled 2x (bilinear; labels nearest), a 1024-1536 px field.

Every random draw is seeded by (``--seed``, set, image, perturbation).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
import zlib

import numpy as np
from bench_scale import SETS, f1, f1_counts

from lociseg.train.data import illumination_field, poisson_gaussian, quantize

PERTURBATIONS = [
    "none",
    "offset",
    "12bit",
    "8bit",
    "dim",
    "saturated",
    "sat-cells",
    "uneven",
    "noise",
    "blank2",
    "absent2",
    "2x",
]


def levels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel floor (1st percentile) and range (99.8th minus 1st), shaped (C, 1, 1)."""
    lo = np.percentile(image, 1.0, axis=(1, 2), keepdims=True)
    hi = np.percentile(image, 99.8, axis=(1, 2), keepdims=True)
    return lo, np.maximum(hi - lo, 1e-6)


def perturb(
    image: np.ndarray, labels: np.ndarray, name: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """The perturbed (C, H, W) raw image, its labels and the factor its cell diameter changed by."""
    from lociseg.transforms import rescale_image, rescale_labels, scaled_shape

    x = image.astype(np.float64)
    lo, span = levels(x)
    if name == "none":
        return image, labels, 1.0
    if name == "offset":
        return (x + span).astype(np.float32), labels, 1.0
    if name == "12bit":
        mn, mx = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
        return np.round((x - mn) / np.maximum(mx - mn, 1e-6) * 4095).astype(np.uint16), labels, 1.0
    if name == "8bit":
        mn, mx = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
        return quantize(x - mn, 8, np.maximum(mx - mn, 1e-6)).astype(np.float32), labels, 1.0
    if name == "dim":
        out = lo + 0.2 * (x - lo) + rng.normal(size=x.shape) * 0.02 * span
        return np.round(np.clip(out, 0, None)).astype(np.float32), labels, 1.0
    if name == "saturated":
        return np.minimum(x, np.percentile(x, 90, axis=(1, 2), keepdims=True)).astype(np.float32), labels, 1.0
    if name == "sat-cells":
        clip = np.median(x[:, labels > 0], axis=1)[:, None, None] if (labels > 0).any() else x.max()
        return np.minimum(x, clip).astype(np.float32), labels, 1.0
    if name == "uneven":
        return (lo + (x - lo) * illumination_field(x.shape[-2:], 0.6, rng)).astype(np.float32), labels, 1.0
    if name == "noise":
        signal = (x - lo) / span
        return (lo + span * poisson_gaussian(signal, 30.0, 0.03, rng)).astype(np.float32), labels, 1.0
    if name in ("blank2", "absent2"):
        out = x.copy()
        out[1] = 0.0 if name == "absent2" else lo[1] + rng.normal(size=x.shape[-2:]) * 0.01 * span[1]
        return out.astype(np.float32), labels, 1.0
    if name == "2x":
        big = rescale_labels(labels, scaled_shape(labels.shape, 2.0))
        return rescale_image(image.astype(np.float32), 2.0), big, 2.0
    raise ValueError(f"unknown perturbation {name!r}")


def run(args) -> dict:
    import torch

    from lociseg import load_dataset
    from lociseg.predict.api import load_model
    from lociseg.transforms import diameter_from_labels

    torch.set_num_threads(1)
    models, rows = {}, []
    for spec in args.sets:
        kind, channels = SETS.get(spec, ("cells", None))
        kind = args.model or kind
        seg = models.setdefault(kind, load_model(kind, device="cpu"))
        ds = load_dataset(spec, channels=channels) if channels else load_dataset(spec)
        pick = np.sort(np.random.default_rng(args.seed).choice(len(ds), min(args.per_set, len(ds)), replace=False))
        samples = []
        for i in pick:
            s = ds[int(i)]
            image = np.asarray(s.image)
            image = image if image.ndim == 3 else image[None]
            lab = np.asarray(s.labels)
            h, w = lab.shape
            y0, x0 = max(0, (h - args.max_side) // 2), max(0, (w - args.max_side) // 2)
            win = (slice(y0, y0 + args.max_side), slice(x0, x0 + args.max_side))
            samples.append((s.name, image[(slice(None), *win)], lab[win]))
        row = {"set": spec, "model": kind, "images": [n for n, _, _ in samples], "f1": {}, "seconds": {}}
        for name in args.perturbations:
            if name in ("blank2", "absent2") and seg.spec.in_channels < 2:
                continue
            counts, t0 = np.zeros(3, int), time.perf_counter()
            for sname, image, lab in samples:
                rng = np.random.default_rng([args.seed, zlib.crc32(f"{spec}/{sname}/{name}".encode())])
                img, gt, zoom = perturb(image, lab, name, rng)
                d = diameter_from_labels(lab) * zoom
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred, _ = seg.segment(img, diameter=d)
                counts += f1_counts(gt, pred)
            row["f1"][name] = f1(counts)
            row["seconds"][name] = time.perf_counter() - t0
            print(f"{spec} {name}: F1@0.5 {row['f1'][name]:.3f} ({row['seconds'][name]:.0f} s)", flush=True)
        rows.append(row)
    return {"rows": rows}


def table(result: dict, perturbations: list[str]) -> str:
    """Markdown table: one row per set, one column per perturbation (n/a where it does not apply)."""
    lines = ["| set (model) | " + " | ".join(perturbations) + " |", "|---|" + "---|" * len(perturbations)]
    for r in result["rows"]:
        cells = [f"{r['f1'][p]:.3f}" if p in r["f1"] else "n/a" for p in perturbations]
        lines.append(f"| {r['set']} ({r['model']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=lambda s: s.split(","), default=list(SETS))
    ap.add_argument("--perturbations", type=lambda s: s.split(","), default=PERTURBATIONS)
    ap.add_argument("--per-set", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-side", type=int, default=768)
    ap.add_argument("--model", help="a checkpoint folder to measure on every set instead of the shipped models")
    ap.add_argument("--json")
    args = ap.parse_args()
    result = run(args)
    print(table(result, args.perturbations))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result}, f, indent=1)


if __name__ == "__main__":
    main()

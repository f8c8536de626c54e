"""Fit a model's one-pass size regression (:mod:`lociseg.predict.size_model`) and store it with the weights.

Usage::

    python benchmarks/fit_size_model.py --model cells [--sets bbbc018@train,aitslab@train] \
        [--per-image 8] [--seed 0] [--out FOLDER] [--dry-run]

The training images of the model (default: ``data.train`` and ``data.channels``
of the checkpoint folder's ``config.yaml``) are each viewed ``--per-image``
times at a random zoom, log-uniform in [``--zoom-min``, ``--zoom-max``], and a
random centre; the target is the field's median label diameter times the zoom.
The ridge penalty is chosen by cross-validation over images. Then the mask
response (how the median mask follows the scale the network is shown, which
``segment`` uses to check and refine the estimate) is fitted on up to
``--calibrate-fields`` fields of each validation set (``data.val``), each
resampled at zooms 0.5, 1 and 2 (centre crop of at most 768 px) and segmented
at 0.7, 1 and 1.4 times its true diameter. The fitted model is written to
``<model folder>/size_model.json`` (or ``--out``); ``--calibrate-only`` refits
only the mask response of the size model already there. Rerun it after
training a new model: a size model belongs to one set of weights.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from lociseg import load_dataset
from lociseg.predict.api import load_model
from lociseg.predict.size_model import (
    VIEWS,
    SizeModel,
    fit_mask_response,
    fit_size_model,
    image_features,
    median_mask_diameter,
    view_crops,
)
from lociseg.train.data import load_optional_channels
from lociseg.transforms import diameter_from_labels, rescale_image


def model_folder(seg) -> Path:
    folder = getattr(seg.model, "checkpoint_path", None)
    if folder is None:
        raise SystemExit("the model has no checkpoint folder; give --out")
    return Path(folder)


def training_specs(folder: Path, split: str = "train") -> tuple[list[str], list[str] | None]:
    """``data.<split>`` and ``data.channels`` of a checkpoint folder's config.yaml."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    data = cfg.get("data", {})
    return list(data.get(split, [])), list(data.get("channels") or []) or None


def _open(seg, spec, channels):
    """The set with the model's channels; a set lacking an optional one without it (select_channels pads it)."""
    return load_optional_channels(spec, channels, list(seg.spec.optional))[0] if channels else load_dataset(spec)


def mask_response(seg, specs, channels, fields, max_side=768):
    """(scale, ratio) pairs: median mask diameter / true diameter when segmenting at scale x the true diameter."""
    scales, ratios = [], []
    for spec in specs:
        ds = _open(seg, spec, channels)
        t0 = time.perf_counter()
        for i in range(min(fields, len(ds))):
            s = ds[i]
            d0 = diameter_from_labels(np.asarray(s.labels))
            if not (d0 > 0 and math.isfinite(d0)):
                continue
            img = seg.select_channels(np.asarray(s.image, np.float32))
            for zoom in (0.5, 1.0, 2.0):
                side = int(max_side / zoom)
                h, w = img.shape[-2:]
                y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
                crop = rescale_image(img[:, y0 : y0 + side, x0 : x0 + side], zoom)
                for k in (0.7, 1.0, 1.4):
                    labels, table = seg.segment(crop, diameter=d0 * zoom * k)
                    scales.append(k)
                    ratios.append(median_mask_diameter(labels, table.score) / (d0 * zoom))
        print(f"{spec}: mask response, {time.perf_counter() - t0:.0f} s", flush=True)
    return np.array(scales), np.array(ratios)


def collect(seg, specs, channels, per_image, zoom_range, seed):
    """Features, diameters and image ids of the random views of every training image."""
    rng = np.random.default_rng(seed)
    feats, diams, groups = [], [], []
    lo, hi = math.log(zoom_range[0]), math.log(zoom_range[1])
    for spec in specs:
        ds = _open(seg, spec, channels)
        t0 = time.perf_counter()
        for i in range(len(ds)):
            s = ds[i]
            d0 = diameter_from_labels(np.asarray(s.labels))
            if not (d0 > 0 and math.isfinite(d0)):
                continue
            img = seg.normalize(seg.select_channels(np.asarray(s.image, np.float32)))
            h, w = img.shape[-2:]
            gid = len(set(groups))
            for _ in range(per_image):
                zoom = math.exp(rng.uniform(lo, hi))
                centre = (rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w)
                crops = view_crops(img, VIEWS, zoom, centre)
                feats.append(image_features(seg.model.backbone, crops, seg.device))
                diams.append(d0 * zoom)
                groups.append(gid)
        print(f"{spec}: {len(ds)} images, {time.perf_counter() - t0:.0f} s", flush=True)
    return np.array(feats), np.array(diams), np.array(groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sets", type=lambda s: s.split(","))
    ap.add_argument("--channels", type=lambda s: s.split(","))
    ap.add_argument("--per-image", type=int, default=8)
    ap.add_argument("--zoom-min", type=float, default=0.5)
    ap.add_argument("--zoom-max", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    ap.add_argument("--calibrate-fields", type=int, default=3, help="validation fields per set for the mask response")
    ap.add_argument("--val-sets", type=lambda s: s.split(","))
    ap.add_argument("--calibrate-only", action="store_true", help="refit only the mask response of the stored model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seg = load_model(args.model, device="cpu")
    folder = Path(args.out) if args.out else model_folder(seg)
    specs, channels = training_specs(model_folder(seg)) if not args.sets else (args.sets, args.channels)
    channels = args.channels or channels
    if args.calibrate_only:
        sm = SizeModel.load(folder)
        if sm is None:
            raise SystemExit(f"no size model in {folder}")
    else:
        x, d, g = collect(seg, specs, channels, args.per_image, (args.zoom_min, args.zoom_max), args.seed)
        sm = fit_size_model(x, d, g, sets=specs)
        print(
            f"{sm.samples} samples from {len(set(g))} images, {x.shape[1]} features: alpha {sm.alpha:g}, "
            f"cross-validated RMS log error {sm.cv_error:.3f} (x{math.exp(sm.cv_error):.2f}); "
            f"diameters {sm.diameter_range[0]:.1f}-{sm.diameter_range[1]:.1f} px"
        )
    val = args.val_sets or training_specs(model_folder(seg), "val")[0]
    if args.calibrate_fields > 0 and val:
        k, r = mask_response(seg, val, channels, args.calibrate_fields)
        sm.mask_bias, sm.mask_slope = fit_mask_response(k, r)
        print(f"mask response on {len(k)} segmentations: log(m/d) = {sm.mask_bias:.3f} + {sm.mask_slope:.3f} log k")
    if not args.dry_run:
        print(f"wrote {sm.save(folder)}")


if __name__ == "__main__":
    main()

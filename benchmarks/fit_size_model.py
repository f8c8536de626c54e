"""Fit a model's one-pass size regression (:mod:`lociseg.predict.size_model`) and store it with the weights.

Usage::

    python benchmarks/fit_size_model.py --model cells [--sets bbbc018@train,aitslab@train] \
        [--per-image 8] [--seed 0] [--out FOLDER] [--dry-run]

The training images of the model (default: ``data.train`` and ``data.channels``
of the checkpoint folder's ``config.yaml``) are each viewed ``--per-image``
times at a random zoom, log-uniform in [``--zoom-min``, ``--zoom-max``], and a
random centre; the target is the field's median label diameter times the zoom.
The ridge penalty is chosen by cross-validation over images; the fitted model
is written to ``<model folder>/size_model.json`` (or ``--out``). Rerun it
after training a new model: a size model belongs to one set of weights.
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
from lociseg.predict.size_model import VIEWS, fit_size_model, image_features, view_crops
from lociseg.transforms import diameter_from_labels


def model_folder(seg) -> Path:
    folder = getattr(seg.model, "checkpoint_path", None)
    if folder is None:
        raise SystemExit("the model has no checkpoint folder; give --out")
    return Path(folder)


def training_specs(folder: Path) -> tuple[list[str], list[str] | None]:
    """``data.train`` and ``data.channels`` of a checkpoint folder's config.yaml."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    data = cfg.get("data", {})
    return list(data.get("train", [])), list(data.get("channels") or []) or None


def collect(seg, specs, channels, per_image, zoom_range, seed):
    """Features, diameters and image ids of the random views of every training image."""
    rng = np.random.default_rng(seed)
    feats, diams, groups = [], [], []
    lo, hi = math.log(zoom_range[0]), math.log(zoom_range[1])
    for spec in specs:
        ds = load_dataset(spec, channels=channels) if channels else load_dataset(spec)
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seg = load_model(args.model, device="cpu")
    folder = Path(args.out) if args.out else model_folder(seg)
    specs, channels = training_specs(model_folder(seg)) if not args.sets else (args.sets, args.channels)
    channels = args.channels or channels
    x, d, g = collect(seg, specs, channels, args.per_image, (args.zoom_min, args.zoom_max), args.seed)
    sm = fit_size_model(x, d, g, sets=specs)
    print(
        f"{sm.samples} samples from {len(set(g))} images, {x.shape[1]} features: alpha {sm.alpha:g}, "
        f"cross-validated RMS log error {sm.cv_error:.3f} (x{math.exp(sm.cv_error):.2f}); "
        f"diameters {sm.diameter_range[0]:.1f}-{sm.diameter_range[1]:.1f} px"
    )
    if not args.dry_run:
        print(f"wrote {sm.save(folder)}")


if __name__ == "__main__":
    main()

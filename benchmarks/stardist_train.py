"""Train a StarDist 2D model on a lociseg data set's training split, with StarDist's own recipe, for a fixed time.

Run with a Python that has ``stardist`` and ``tensorflow-cpu`` (kept out of
lociseg's dependencies, e.g. a separate virtual environment that sees lociseg)::

    python benchmarks/stardist_train.py --set bbbc018 --out /tmp/sd_bbbc018 [--minutes 20] [--threads 2]

The recipe follows StarDist's 2D training example: percentile normalisation
(1, 99.8) per channel, holes filled in the labels, 32 rays, grid (2, 2),
256 px patches, flips/rotations and an intensity jitter as augmentation,
then ``optimize_thresholds`` on the validation split. Epochs of
``--steps`` steps run until ``--minutes`` have passed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def load(spec):
    from lociseg import load_dataset

    ds = load_dataset(spec)
    images, labels = [], []
    for i in range(len(ds)):
        s = ds[i]
        img = np.asarray(s.image, np.float32)
        img = img if img.ndim == 3 else img[None]
        images.append(np.moveaxis(img, 0, -1))
        labels.append(np.asarray(s.labels).astype(np.int32))
    return images, labels


RNG = np.random.default_rng(0)


def augment(x, y):
    """StarDist example augmenter: random 90-degree rotation, flips, intensity scale and shift."""
    k = int(RNG.integers(4))
    x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
    if RNG.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    x = x * RNG.uniform(0.6, 2) + RNG.uniform(-0.2, 0.2)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="bbbc018")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    def prep(images, labels):
        return [normalize(x, 1, 99.8, axis=(0, 1)) for x in images], [fill_label_holes(y) for y in labels]

    xt, yt = prep(*load(f"{args.set}@train"))
    xv, yv = prep(*load(f"{args.set}@val"))
    conf = Config2D(
        n_rays=32,
        grid=(2, 2),
        n_channel_in=xt[0].shape[-1],
        train_patch_size=(256, 256),
        train_batch_size=4,
        train_tensorboard=False,
    )
    name = args.set.replace(":", "_")
    model = StarDist2D(conf, name=name, basedir=args.out)
    t0, epochs = time.time(), 0
    while time.time() - t0 < 60 * args.minutes:
        model.train(xt, yt, validation_data=(xv, yv), augmenter=augment, epochs=1, steps_per_epoch=args.steps)
        epochs += 1
    model.optimize_thresholds(xv, yv)
    print(f"trained {epochs} epochs of {args.steps} steps in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()

"""Train a StarDist 2D model on a lociseg data set's training split, with StarDist's own recipe, for a fixed CPU time.

Run with a Python that has ``stardist`` and ``tensorflow-cpu`` (kept out of
lociseg's dependencies, e.g. ``python -m venv /work/venv-stardist`` with
``pip install tensorflow-cpu stardist tifffile``); the images come from a
file written by ``benchmarks/bench_stardist.py dump`` in lociseg's own
environment, so this script does not import lociseg::

    python benchmarks/bench_stardist.py dump --set bbbc018:nuclei --channels DNA --out /tmp/bbbc018_nuclei.npz
    /work/venv-stardist/bin/python benchmarks/stardist_train.py --data /tmp/bbbc018_nuclei.npz \
        --out /tmp/sd [--cpu-minutes 15] [--threads 1]

The recipe follows StarDist's 2D training example: percentile normalisation
(1, 99.8) per channel, holes filled in the labels, 32 rays, grid (2, 2),
256 px patches, flips/rotations and an intensity jitter as augmentation,
then ``optimize_thresholds`` on the validation split. Epochs of ``--steps``
steps run until the process has used ``--cpu-minutes`` of CPU time (all its
threads together) or ``--wall-minutes`` have passed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

RNG = np.random.default_rng(0)


def split(data, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (H, W, C) float32 and labels (H, W) int32 of one split of a ``bench_stardist.py dump`` file."""
    n = int(data[f"{name}_count"])
    images = [np.moveaxis(data[f"{name}_image_{i}"].astype(np.float32), 0, -1) for i in range(n)]
    return images, [data[f"{name}_labels_{i}"].astype(np.int32) for i in range(n)]


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
    ap.add_argument("--data", required=True, help="file written by bench_stardist.py dump")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="stardist")
    ap.add_argument("--cpu-minutes", type=float, default=15)
    ap.add_argument("--wall-minutes", type=float, default=45)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    data = np.load(args.data)

    def prep(images, labels):
        return [normalize(x, 1, 99.8, axis=(0, 1)) for x in images], [fill_label_holes(y) for y in labels]

    xt, yt = prep(*split(data, "train"))
    xv, yv = prep(*split(data, "val"))
    conf = Config2D(
        n_rays=32,
        grid=(2, 2),
        n_channel_in=xt[0].shape[-1],
        train_patch_size=(256, 256),
        train_batch_size=4,
        train_tensorboard=False,
    )
    model = StarDist2D(conf, name=args.name, basedir=args.out)
    t0, c0, epochs = time.time(), time.process_time(), 0
    while time.process_time() - c0 < 60 * args.cpu_minutes and time.time() - t0 < 60 * args.wall_minutes:
        model.train(xt, yt, validation_data=(xv, yv), augmenter=augment, epochs=1, steps_per_epoch=args.steps)
        epochs += 1
        print(
            f"epoch {epochs}: {(time.process_time() - c0) / 60:.1f} CPU-min, {(time.time() - t0) / 60:.1f} min",
            flush=True,
        )
    cpu, wall = (time.process_time() - c0) / 60, (time.time() - t0) / 60
    model.optimize_thresholds(xv, yv)
    record = {
        "epochs": epochs,
        "steps": epochs * args.steps,
        "cpu_minutes": cpu,
        "wall_minutes": wall,
        "threads": args.threads,
        "load_average_end": os.getloadavg(),
        "thresholds": dict(model.thresholds._asdict()),
    }
    with open(os.path.join(args.out, args.name, "lociseg_training.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record))


if __name__ == "__main__":
    main()

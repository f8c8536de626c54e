"""StarDist side of ``benchmarks/bench_stardist.py run``: segments fields on request and times itself.

Runs in the Python that has ``stardist`` and ``tensorflow-cpu`` (it does not
import lociseg). Loads a model trained by ``benchmarks/stardist_train.py``
and the test split of a ``bench_stardist.py dump`` file, segments the first
field once (warm-up), prints ``ready``, then answers each stdin line
``<field index> <output .npy path>`` with one JSON line ``{"seconds": ...}``
after writing the labels there. The time covers StarDist's percentile
normalisation and ``predict_instances`` with the model's optimised thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder of the trained model (basedir/name)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from csbdeep.utils import normalize
    from stardist.models import StarDist2D

    folder = os.path.abspath(args.model)
    model = StarDist2D(None, name=os.path.basename(folder), basedir=os.path.dirname(folder))
    data = np.load(args.data)
    images = [np.moveaxis(data[f"test_image_{i}"].astype(np.float32), 0, -1) for i in range(int(data["test_count"]))]

    def segment(image: np.ndarray) -> np.ndarray:
        x = normalize(image, 1, 99.8, axis=(0, 1))
        return model.predict_instances(x[..., 0] if x.shape[-1] == 1 else x, verbose=False)[0]

    segment(images[0])
    print("ready", flush=True)
    for line in sys.stdin:
        index, path = line.split()
        t0 = time.perf_counter()
        labels = segment(images[int(index)])
        seconds = time.perf_counter() - t0
        np.save(path, labels.astype(np.int32))
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()

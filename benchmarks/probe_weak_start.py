"""Why weak LACSS runs start dead, and what keeps them alive: one comparison run per variant.

Trains one row of ``benchmarks/compare_models.py`` (its recipe, data and scoring; 2 validation
images) under one variant of how the weak mask loss reaches the logits, and prints the
foreground coverage of the masks over the steps (``diag_coverage`` in ``log.csv``), the validation
curve and the test F1@0.5. Variants:

``sigmoid``       the LACSS weak loss through ``sigmoid`` (the mask head without its location prior)
``prior``         the mask head's location prior (``lacss.seghead.location_prior``; the default)
``bias``          no prior; the last mask conv's bias starts at -2.5 (probability 0.08)
``floor``         no prior; the sigmoid's slope floored at 0.01 where the loss asks a pixel to grow
``growth``        no prior; the slope ``1 - y`` (that of ``log y``) where the loss asks a pixel to grow
``nonsat``        no prior; ``1 - y`` where it asks to grow, ``y`` where it asks to shrink
``late-start``    no prior; the weak loss off for the first 500 steps (``weak.warmup_start``)

The gradient variants replace :func:`lociseg.losses.weak.probs_and_penalty` for the run (the
loss value is unchanged; only how its gradient passes the sigmoid). Example::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/probe_weak_start.py --variant nonsat \\
        --dataset koyuncu --train-data synth --seed 0 --runs /tmp/probe
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import benchmarks.compare_models as cm  # noqa: E402
import lociseg.losses.weak as weak  # noqa: E402
from lociseg.models import seghead  # noqa: E402

VARIANTS = ("sigmoid", "prior", "bias", "floor", "growth", "nonsat", "late-start")


class _Slope(torch.autograd.Function):
    """``sigmoid`` forward; backward slope chosen by the sign of the incoming gradient."""

    grow: str = "sigmoid"
    shrink: str = "sigmoid"

    @staticmethod
    def forward(ctx, z):  # noqa: D102
        y = torch.sigmoid(z)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (y,) = ctx.saved_tensors
        slopes = {"sigmoid": y * (1 - y), "floor": (y * (1 - y)).clamp_min(0.01), "log": 1 - y, "log1m": y}
        return g * torch.where(g < 0, slopes[_Slope.grow], slopes[_Slope.shrink])


def _use_slopes(grow: str, shrink: str) -> None:
    _Slope.grow, _Slope.shrink = grow, shrink
    weak.probs_and_penalty = lambda z, from_logits, *_: (_Slope.apply(z), F.softplus(z))


def _bias_init(value: float) -> None:
    init = seghead.SegHead.__init__

    def patched(self, *args, **kw):
        init(self, *args, **kw)
        torch.nn.init.constant_(self.instance[-1].bias, value)

    seghead.SegHead.__init__ = patched


def apply_variant(variant: str) -> dict:
    """Patch the run for ``variant``; the config overrides it needs."""
    over = {"lacss.seghead.location_prior": variant == "prior"}
    if variant == "bias":
        _bias_init(-2.5)
    elif variant == "floor":
        _use_slopes("floor", "sigmoid")
    elif variant == "growth":
        _use_slopes("log", "sigmoid")
    elif variant == "nonsat":
        _use_slopes("log", "log1m")
    elif variant == "late-start":
        over["lacss.weak.warmup_start"] = 500
    return over


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=VARIANTS, default="prior")
    ap.add_argument("--dataset", default="koyuncu", choices=list(cm.DATASETS))
    ap.add_argument("--model", default="lacss-weak", choices=["lacss-weak", "lacss-weak+aux"])
    ap.add_argument("--train-data", default="synth", choices=list(cm.TRAIN_DATA))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=Path, default=Path("runs/probe_weak_start"))
    a = ap.parse_args()
    over = apply_variant(a.variant)
    make = cm.run_config
    cm.run_config = lambda *x, **k: make(*x, **k).override(over)
    runs = a.runs / a.variant
    args = cm.build_parser().parse_args(["--lacss-steps", str(a.steps), "--val-images", "2", "--runs", str(runs)])
    data = {a.dataset: cm.load_data(a.dataset, args)}
    shutil.rmtree(args.runs, ignore_errors=True)
    rec = cm.run_one(a.dataset, a.model, a.train_data, a.seed, args, data)
    with open(next(args.runs.glob("*")) / "log.csv") as f:
        rows = list(csv.DictReader(f))
    cov = [(int(r["step"]), float(r["diag_coverage"])) for r in rows if r["diag_coverage"]]
    print(a.variant, "coverage:", " ".join(f"{s}:{c:.2f}" for s, c in cov[:: max(1, len(cov) // 20)]))
    print(a.variant, "validation F1@0.5:", " ".join(f"{s}:{f:.2f}" for s, _, f in rec["curve"]))
    print(a.variant, f"test F1@0.5 {rec['f1_50']:.3f} AP75 {rec['ap75']:.3f}")


if __name__ == "__main__":
    main()

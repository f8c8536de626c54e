"""Figure: real vs cut-and-paste synthetic images, and their distribution shift.

Top rows: real images and synthetic ones (same display scaling, outlines of
the labels in yellow on the right half of each panel). Bottom row: cells per
image, confluence (cell-covered fraction) and per-channel pixel-intensity
histograms, real vs synthetic.

Usage::

    python benchmarks/synth_figure.py --dataset bbbc018@train --out benchmarks/results/synth_bbbc018.png
    python benchmarks/synth_figure.py --dataset dsb2018-train --out benchmarks/results/synth_dsb.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _composite(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """RGB display image: 1 channel grey, 2 channels red/green, 3+ the first three."""
    x = np.clip((image.astype(np.float32) - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1)
    if x.shape[0] == 1:
        return np.repeat(x[0][..., None], 3, axis=-1)
    if x.shape[0] == 2:
        return np.stack([x[0], x[1], np.zeros_like(x[0])], axis=-1)
    return np.moveaxis(x[:3], 0, -1)


def _with_outlines(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    out = rgb.copy()
    out[find_boundaries(labels, mode="inner")] = (1.0, 1.0, 0.0)
    return np.concatenate([rgb, out], axis=1)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="bbbc018@train")
    ap.add_argument("--n-real", type=int, default=12, help="real images to cut cells from (first N)")
    ap.add_argument("--factor", type=float, default=1.0, help="synthetic images per real image")
    ap.add_argument("--confluence", default=None, help="fixed confluence or LOW,HIGH (default: as the source)")
    ap.add_argument("--cell-pool", choices=["all", "source"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=3, help="examples per row")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/synth_figure.png"))
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lociseg.cli.synth import _parse_confluence
    from lociseg.data import load_samples
    from lociseg.synth import cut_paste_synthesize

    real = [s for s in load_samples(args.dataset, limit=args.n_real) if s.labels is not None]
    real = [s for s in real if np.asarray(s.image).ndim == 3]
    n_ch = {s.image.shape[0] for s in real}
    if len(n_ch) != 1:
        raise SystemExit(f"{args.dataset}: mixed channel counts {n_ch}")
    synth = cut_paste_synthesize(
        real,
        n_images=int(round(args.factor * len(real))),
        confluence=_parse_confluence(args.confluence),
        rng=args.seed,
        cell_pool=args.cell_pool,
    )
    pooled = np.concatenate([s.image.reshape(s.image.shape[0], -1) for s in real], axis=1).astype(np.float32)
    lo, hi = np.percentile(pooled, 1, axis=1), np.percentile(pooled, 99.7, axis=1)

    k = min(args.show, len(real), len(synth))
    fig = plt.figure(figsize=(5.2 * k, 8.6), constrained_layout=True)
    grid = fig.add_gridspec(3, 1, height_ratios=[1, 1, 1.1])
    top = grid[0].subgridspec(1, k)
    mid = grid[1].subgridspec(1, k)
    for _row, (spec, items, title) in enumerate([(top, real, "real"), (mid, synth, "synthetic")]):
        for i in range(k):
            ax = fig.add_subplot(spec[i])
            s = items[i]
            ax.imshow(_with_outlines(_composite(s.image, lo, hi), s.labels), interpolation="nearest")
            ax.set_title(f"{title} {s.name}: {int(s.labels.max())} cells", fontsize=9)
            ax.axis("off")

    bottom = grid[2].subgridspec(1, 2 + pooled.shape[0])
    cells = [[int(len(np.unique(s.labels)) - 1) for s in items] for items in (real, synth)]
    conf = [[float((s.labels > 0).mean()) for s in items] for items in (real, synth)]
    ax = fig.add_subplot(bottom[0])
    bins = np.linspace(0, max(max(cells[0]), max(cells[1])) + 1, 15)
    ax.hist(cells, bins=bins, label=["real", "synthetic"], color=["tab:blue", "tab:orange"])
    ax.set_xlabel("cells per image")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(bottom[1])
    ax.hist(conf, bins=np.linspace(0, 1, 21), label=["real", "synthetic"], color=["tab:blue", "tab:orange"])
    ax.set_xlabel("confluence (cell-covered fraction)")
    names = (real[0].meta or {}).get("channel_names") or [f"channel {c}" for c in range(pooled.shape[0])]
    for c in range(pooled.shape[0]):
        ax = fig.add_subplot(bottom[2 + c])
        r = pooled[c]
        sy = np.concatenate([s.image[c].ravel() for s in synth]).astype(np.float32)
        edges = np.linspace(min(r.min(), sy.min()), np.percentile(np.concatenate([r, sy]), 99.9), 80)
        ax.hist(r, bins=edges, density=True, histtype="step", label="real", color="tab:blue")
        ax.hist(sy, bins=edges, density=True, histtype="step", label="synthetic", color="tab:orange")
        ax.set_yscale("log")
        ax.set_xlabel(f"intensity: {names[c] if c < len(names) else c}")
    fig.suptitle(
        f"{args.dataset}: {len(real)} real vs {len(synth)} cut-and-paste synthetic images (cells from {args.cell_pool}) "
        f"(median cells/image {np.median(cells[0]):.0f} vs {np.median(cells[1]):.0f}; "
        f"confluence {np.median(conf[0]):.2f} vs {np.median(conf[1]):.2f})",
        fontsize=11,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()

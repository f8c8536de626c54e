"""``lociseg synth``: extend a labelled data set with cut-and-paste synthetic images."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from ._common import OutputLock, check_new, describe_error, exit_if_failed, prepare_out_dir


def _parse_confluence(text: str | None) -> float | tuple[float, float] | None:
    if text is None or text.strip().lower() in ("", "auto", "source"):
        return None
    try:
        parts = [float(v) for v in text.replace(":", ",").split(",")]
    except ValueError:
        raise ConfigError(f"--confluence: expected a number, LOW,HIGH or 'source', got {text!r}") from None
    if len(parts) not in (1, 2) or not all(0.0 <= v <= 0.95 for v in parts):
        raise ConfigError(f"--confluence: values must be in [0, 0.95] (one value or LOW,HIGH), got {text!r}")
    return parts[0] if len(parts) == 1 else (min(parts), max(parts))


def main(
    dataset: str = typer.Argument(
        ..., help="Labelled data set spec (e.g. bbbc018, bbbc018@train, dsb2018-train) or images/+masks/ folder."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (images/, masks/, annotations/, synth.json)."),
    factor: float = typer.Option(
        5.0, "--factor", help="Synthetic images per real labelled image (the seed study used 5)."
    ),
    n_images: int | None = typer.Option(
        None, "--n-images", help="Exact number of synthetic images (overrides --factor)."
    ),
    confluence: str | None = typer.Option(
        None,
        "--confluence",
        "--density",
        help="Cell-covered fraction per image: 0.4, a range 0.2,0.6, or 'source' (default: as the source image).",
    ),
    split: str | None = typer.Option(None, "--split", help="Split of the data set to draw cells from (e.g. train)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (output is a pure function of it)."),
    feather: float = typer.Option(1.0, "--feather", help="Width in px of the blended cell edge (0 = hard paste)."),
    cell_pool: str = typer.Option(
        "all", "--cell-pool", help="Paste cells from 'all' images or only the background's 'source' image."
    ),
    max_overlap: float = typer.Option(
        0.1, "--max-overlap", help="Largest fraction of a pasted cell that may cover earlier cells."
    ),
    include_originals: bool = typer.Option(
        False, "--include-originals", help="Also copy the real images into the output folder."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N real images (quick tries)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the synthetic data set of an earlier run in --out."
    ),
) -> None:
    """Synthesise labelled images by pasting real cells onto cell-free background.

    Cells of DATASET are cut out and pasted at the chosen confluence onto
    background tiled from the same images; labels stay consistent with the
    pixels (occluded cells are relabelled, tiny remnants dropped) and weak
    annotations (points at cell centroids, foreground) are written too.
    Example: lociseg synth bbbc018@train --out synth_bbbc018 --factor 5
    """
    from ..data import load_samples
    from ..synth.cutpaste import extract_cells

    conf = _parse_confluence(confluence)
    if cell_pool not in ("all", "source"):
        raise ConfigError(f"--cell-pool: expected 'all' or 'source', got {cell_pool!r}")
    if not 0.0 <= max_overlap <= 1.0:
        raise ConfigError(f"--max-overlap: expected a fraction in [0, 1], got {max_overlap}")
    if factor < 0 or (n_images is not None and n_images < 0):
        raise ConfigError("--factor and --n-images must not be negative")
    check_new([out / "synth.json"], overwrite)  # an earlier run's data set, before any work
    spec = dataset if split is None or "@" in dataset else f"{dataset}@{split}"
    samples = [s for s in load_samples(spec, limit=limit) if getattr(s, "labels", None) is not None]
    if not samples:
        raise ConfigError(f"{dataset}: no labelled images to cut cells from")
    n = n_images if n_images is not None else int(round(factor * len(samples)))
    cells = extract_cells(samples)
    if not cells:
        raise ConfigError(f"{dataset}: no complete cells found (all touch the border or are tiny)")
    prepare_out_dir(out)
    with OutputLock(out, "lociseg synth"):
        _write_all(out, samples, cells, n, conf, spec, seed, feather, cell_pool, max_overlap, include_originals)


def _write_all(out, samples, cells, n, conf, spec, seed, feather, cell_pool, max_overlap, include_originals) -> None:
    """Generate and write the images (one failed image is reported, the others still written) and synth.json."""
    import numpy as np
    from tqdm import tqdm

    from ..synth.cutpaste import iter_cut_paste
    from ..synth.io import write_manifest, write_sample

    failures: list[str] = []
    metas: dict[str, dict] = {}
    if include_originals:
        for s in samples:
            try:
                write_sample(out, s)
            except Exception as exc:  # noqa: BLE001 - one image must not stop the others
                failures.append(f"{s.name}: {describe_error(exc)}")
    rng = np.random.default_rng(seed)
    gen = iter_cut_paste(
        samples,
        n_images=n,
        confluence=conf,
        rng=rng,
        feather=feather,
        cells=cells,
        cell_pool=cell_pool,
        max_overlap=max_overlap,
    )
    for sample in tqdm(gen, total=n, desc="synth", unit="img", disable=None):
        try:
            write_sample(out, sample)
            metas[sample.name] = sample.meta
        except Exception as exc:  # noqa: BLE001 - one image must not stop the others
            failures.append(f"{sample.name}: {describe_error(exc)}")
    params = {
        "dataset": spec,
        "n_real": len(samples),
        "n_cells_library": len(cells),
        "n_images": n,
        "confluence": conf,
        "seed": seed,
        "feather": feather,
        "cell_pool": cell_pool,
        "max_overlap": max_overlap,
        "include_originals": include_originals,
    }
    write_manifest(out, params, metas)
    typer.echo(f"wrote {len(metas)} synthetic images ({len(cells)} cells from {len(samples)} real images) to {out}")
    exit_if_failed(failures)

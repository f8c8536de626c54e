"""A labelled data set extended with cut-and-paste images, written as a folder: the library behind ``lociseg synth``.

:func:`synth_folder` cuts the cells out of a labelled data set
(:func:`~lociseg.synth.cutpaste.extract_cells`), pastes them onto background
(:func:`~lociseg.synth.cutpaste.iter_cut_paste`) and writes each image as it
comes (:mod:`lociseg.synth.io`), with ``synth.json`` last; one image that
cannot be written never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..batch import OutputLock, check_new, prepare_out_dir
from ..data import load_samples
from ..errors import ConfigError, describe_error
from .cutpaste import CellPatch, extract_cells, iter_cut_paste
from .io import write_manifest, write_sample

#: Where pasted cells come from: every real image, or only the background's own.
CELL_POOLS = ("all", "source")


@dataclass
class SynthRun:
    """What :func:`synth_folder` wrote.

    Attributes
    ----------
    written : int
        Synthetic images written.
    cells : int
        Cells in the library they were pasted from.
    real : int
        Real labelled images the cells came from.
    failures : list of str
        ``name: reason`` of each image that could not be written.
    """

    written: int = 0
    cells: int = 0
    real: int = 0
    failures: list[str] = field(default_factory=list)


def check_synth_options(cell_pool: str, max_overlap: float, factor: float, n_images: int | None) -> None:
    """Refuse an unknown cell pool, an overlap outside [0, 1] or a negative image count (before any work)."""
    if cell_pool not in CELL_POOLS:
        raise ConfigError(f"--cell-pool: expected 'all' or 'source', got {cell_pool!r}")
    if not 0.0 <= max_overlap <= 1.0:
        raise ConfigError(f"--max-overlap: expected a fraction in [0, 1], got {max_overlap}")
    if factor < 0 or (n_images is not None and n_images < 0):
        raise ConfigError("--factor and --n-images must not be negative")


def synth_folder(
    dataset: str,
    out: str | os.PathLike,
    *,
    factor: float = 5.0,
    n_images: int | None = None,
    confluence: float | tuple[float, float] | None = None,
    split: str | None = None,
    seed: int = 0,
    feather: float = 1.0,
    cell_pool: str = "all",
    max_overlap: float = 0.1,
    include_originals: bool = False,
    limit: int | None = None,
    overwrite: bool = False,
) -> SynthRun:
    """Write ``n_images`` (or ``factor`` per real image) cut-and-paste images of ``dataset`` into ``out``.

    Parameters
    ----------
    dataset : str
        Labelled data set spec or ``images/`` + ``masks/`` folder.
    out : path-like
        Output folder (created, and locked while written).
    factor : float
        Synthetic images per real labelled image.
    n_images : int, optional
        Exact number of synthetic images (overrides ``factor``).
    confluence : float or (float, float), optional
        Cell-covered fraction (or range) per image; default: as the source image.
    split : str, optional
        Split of ``dataset`` to draw cells from.
    seed : int
        Random seed: the output is a pure function of it.
    feather, cell_pool, max_overlap
        As in :func:`~lociseg.synth.cutpaste.iter_cut_paste`.
    include_originals : bool
        Also copy the real images into ``out``.
    limit : int, optional
        Use only the first ``limit`` real images.
    overwrite : bool
        Replace an earlier run's ``synth.json``; otherwise it stops the run before any work.

    Returns
    -------
    SynthRun
    """
    out = Path(out)
    check_synth_options(cell_pool, max_overlap, factor, n_images)
    check_new([out / "synth.json"], overwrite)  # an earlier run's data set, before any work
    spec = dataset if split is None or "@" in dataset else f"{dataset}@{split}"
    samples = [s for s in load_samples(spec, limit=limit) if getattr(s, "labels", None) is not None]
    if not samples:
        raise ConfigError(f"{dataset}: no labelled images to cut cells from")
    n = n_images if n_images is not None else int(round(factor * len(samples)))
    cells = extract_cells(samples)
    if not cells:
        raise ConfigError(f"{dataset}: no complete cells found (all touch the border or are tiny)")
    params = {
        "dataset": spec,
        "n_real": len(samples),
        "n_cells_library": len(cells),
        "n_images": n,
        "confluence": confluence,
        "seed": seed,
        "feather": feather,
        "cell_pool": cell_pool,
        "max_overlap": max_overlap,
        "include_originals": include_originals,
    }
    prepare_out_dir(out)
    with OutputLock(out, "lociseg synth"):
        return _write_all(out, samples, cells, params)


def _write_all(out: Path, samples: Sequence[Any], cells: list[CellPatch], params: dict[str, Any]) -> SynthRun:
    """Generate and write the images (one failed image is reported, the others still written) and synth.json."""
    run = SynthRun(cells=len(cells), real=len(samples))
    metas: dict[str, dict] = {}
    if params["include_originals"]:
        for s in samples:
            try:
                write_sample(out, s)
            except Exception as exc:  # noqa: BLE001 - one image must not stop the others
                run.failures.append(f"{s.name}: {describe_error(exc)}")
    gen = iter_cut_paste(
        samples,
        n_images=params["n_images"],
        confluence=params["confluence"],
        rng=np.random.default_rng(params["seed"]),
        feather=params["feather"],
        cells=cells,
        cell_pool=params["cell_pool"],
        max_overlap=params["max_overlap"],
    )
    for sample in tqdm(gen, total=params["n_images"], desc="synth", unit="img", disable=None):
        try:
            write_sample(out, sample)
            metas[sample.name] = sample.meta
        except Exception as exc:  # noqa: BLE001 - one image must not stop the others
            run.failures.append(f"{sample.name}: {describe_error(exc)}")
    write_manifest(out, params, metas)
    run.written = len(metas)
    return run

"""Writing synthetic samples as a folder that ``lociseg.data.load_dataset`` reads.

Layout::

    DIR/images/<name>.tif          (C, H, W) image, source dtype, axes CYX
    DIR/masks/<name>.tif           instance labels (uint16, uint32 above 65535 objects)
    DIR/annotations/<name>.points.csv, <name>.foreground.tif
                                   weak annotations (the ``lociseg.annotate.store``
                                   format: CSV with header ``y,x``; uint8 0/1 TIFF)
    DIR/synth.json                 parameters and per-image metadata
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..annotate.store import write_annotation
from ..io import write_labels
from ..io.files import atomic_write


def write_labels_tiff(path: Path, labels: np.ndarray) -> None:
    """Label TIFF (compressed, uint16/uint32) via :func:`lociseg.io.write_labels`."""
    write_labels(path, labels)


def write_weak_annotation(
    folder: Path, name: str, points: np.ndarray, foreground: np.ndarray, meta: dict | None = None
) -> None:
    """Points + foreground, via :func:`lociseg.annotate.store.write_annotation`."""
    write_annotation(folder, name, points, foreground, meta or {})


def write_sample(out_dir: Path, sample: Any) -> None:
    """Write one synthetic (or real) labelled sample into the folder layout above."""
    out_dir = Path(out_dir)
    for sub in ("images", "masks", "annotations"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    image = np.asarray(sample.image)
    if image.ndim == 2:
        image = image[None]
    # a generated folder is rewritten in place when generated again
    atomic_write(
        out_dir / "images" / f"{sample.name}.tif",
        lambda tmp: tifffile.imwrite(
            tmp, image, photometric="minisblack", metadata={"axes": "CYX"}, compression="zlib"
        ),
        overwrite=True,
    )
    atomic_write(
        out_dir / "masks" / f"{sample.name}.tif",
        lambda tmp: write_labels_tiff(tmp, np.asarray(sample.labels)),
        overwrite=True,
    )
    if sample.points is not None and sample.foreground is not None:
        write_weak_annotation(out_dir / "annotations", sample.name, sample.points, sample.foreground)


def write_manifest(out_dir: Path, params: dict, metas: dict[str, dict]) -> None:
    """``synth.json``: the parameters and each image's metadata."""
    text = json.dumps(
        {"params": params, "images": metas}, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)
    )
    atomic_write(Path(out_dir) / "synth.json", text, overwrite=True)

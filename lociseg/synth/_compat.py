"""Bridges to the data package while it is being written.

:func:`make_sample` builds a :class:`lociseg.data.Sample` when that class
exists and an equivalent local record otherwise; :func:`load_samples` calls
:func:`lociseg.data.load_dataset` when it exists and otherwise reads the
few layouts the synthesis and benchmarks need (DSB2018 folders, BBBC018
outlines, generic ``images/`` + ``masks/`` folders). Remove the fallbacks
once ``lociseg.data`` provides both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError


@dataclass
class _Sample:
    """Same fields as ``lociseg.data.Sample``."""

    image: np.ndarray
    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    foreground: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)


def make_sample(**fields: Any) -> Any:
    """A ``lociseg.data.Sample`` (or the local equivalent) with the given fields."""
    try:
        from ..data import Sample
    except ImportError:
        Sample = _Sample
    return Sample(**fields)


def data_root() -> Path:
    """``$LOCISEG_DATA``, else ``shared/data`` beside the repository."""
    try:
        from ..data import default_data_root

        return Path(default_data_root())
    except ImportError:
        pass
    env = os.environ.get("LOCISEG_DATA")
    if env:
        return Path(env)
    for cand in (Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if cand.is_dir():
            return cand
    raise InputError("shared data folder not found; set LOCISEG_DATA")


def load_samples(spec: str, *, split: str | None = None, channels: Any = None, limit: int | None = None) -> list[Any]:
    """Labelled samples of a data set spec or folder (see module docstring)."""
    try:
        from ..data import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset(spec, split=split, channels=channels)
        n = len(ds) if limit is None else min(limit, len(ds))
        return [ds[i] for i in range(n)]
    return _fallback_load(spec, limit)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def _fallback_load(spec: str, limit: int | None) -> list[Any]:
    base = spec.split("@")[0]
    out: list[Any] = []
    if base in ("dsb2018-train", "dsb2018-test"):
        root = data_root() / ("dsb2018_stage1_train_subset/stage1_train" if base == "dsb2018-train" else "dsb2018_stage1_test/stage1_test")
        for d in sorted(root.iterdir())[:limit]:
            img = _read_png(d / "images" / f"{d.name}.png")
            img = img[..., :1].transpose(2, 0, 1) if img.ndim == 3 else img[None]
            labels = np.zeros(img.shape[1:], np.int32)
            for k, m in enumerate(sorted((d / "masks").glob("*.png")), start=1):
                labels[_read_png(m) > 0] = k
            out.append(make_sample(image=img, labels=labels, name=d.name, meta={"channel_names": ["nuclei"]}))
        return out
    if base.startswith("bbbc018"):
        root = data_root() / "bbbc018"
        target = "nuclei" if base.endswith(":nuclei") else "cells"
        outlines = sorted((root / "BBBC018_v1_outlines").glob(f"*-{target}.png"))[:limit]
        for p in outlines:
            well = p.name.split("-")[0]
            chans = ["actin", "DNA"]
            img = np.stack([np.fromfile(root / "BBBC018_v1_images" / f"{well}-{c}.DIB", "<u2", offset=52).reshape(512, 512) for c in chans])
            raw = _read_png(p)
            line = raw == 255 if p.name == "17675-nuclei.png" else raw > 0
            comp, n = ndi.label(~line)
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            keep = sizes >= 15
            keep[np.argmax(sizes)] = False  # the background region
            lut = np.zeros(len(sizes), np.int32)
            lut[keep] = np.arange(1, keep.sum() + 1)
            labels = lut[comp]
            if target == "cells":
                # enclosed background pockets between cells contain no nucleus: drop them
                nraw = _read_png(root / "BBBC018_v1_outlines" / f"{well}-nuclei.png")
                nline = nraw == 255 if well == "17675" else nraw > 0
                ncomp, _ = ndi.label(~nline)
                nsizes = np.bincount(ncomp.ravel())
                nuclei = (ncomp != np.argmax(nsizes)) & ~nline
                has = np.bincount(labels[nuclei], minlength=labels.max() + 1) > 0
                has[0] = False
                lut2 = np.zeros(len(has), np.int32)
                lut2[has] = np.arange(1, has.sum() + 1)
                labels = lut2[labels]
            # give the 1-px outline pixels to a neighbouring cell so cells touch
            grown = ndi.grey_dilation(labels, size=3)
            labels = np.where(line & (grown > 0), grown, labels).astype(np.int32)
            out.append(make_sample(image=img, labels=labels, name=well, meta={"channel_names": chans}))
        return out
    folder = Path(spec)
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        import tifffile

        for ip in sorted((folder / "images").iterdir())[:limit]:
            mp = next(iter(sorted((folder / "masks").glob(ip.stem + ".*"))), None)
            img = tifffile.imread(ip) if ip.suffix.lower() in (".tif", ".tiff") else _read_png(ip)
            img = img[None] if img.ndim == 2 else img
            labels = None if mp is None else (tifffile.imread(mp) if mp.suffix.lower() in (".tif", ".tiff") else _read_png(mp)).astype(np.int32)
            out.append(make_sample(image=img, labels=labels, name=ip.stem, meta={}))
        return out
    raise InputError(f"unknown data set {spec!r} (lociseg.data is not available for other specs)")

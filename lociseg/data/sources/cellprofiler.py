"""CellProfiler example images (unlabelled HT29 and Drosophila Kc167 fields)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import read_image
from ..dataset import Sample

CELLPROFILER = {
    # file suffix per channel name; "cell" / "actin" are aliases of the cell-body stain
    "human": {
        "folder": "ExampleHuman/images",
        "channels": {"DNA": "d0", "pH3": "d1", "actin": "d2"},
        "default": ("actin", "DNA"),
        "aliases": {"cell": "actin", "nuclei": "DNA"},
        "pattern": r"^(?P<field>.+D03f00)d[0-2]\.tif$",
    },
    "fly": {
        "folder": "ExampleFly/images",
        "channels": {"DNA": "D", "FITC": "F", "rhodamine": "R"},
        "default": ("FITC", "DNA"),
        "aliases": {"cell": "FITC", "actin": "FITC", "nuclei": "DNA"},
        "pattern": r"^(?P<field>.+)_[DFR]\.TIF$",
    },
}


@dataclass
class CellProfilerLoader:
    """One CellProfiler example field: the chosen channels, one TIFF each, no labels."""

    root: Path
    kind: str
    channels: list[int]

    def __call__(self, name: str) -> Sample:
        spec = CELLPROFILER[self.kind]
        folder = self.root / spec["folder"]
        cnames = list(spec["channels"])
        sep = "" if self.kind == "human" else "_"
        ext = ".tif" if self.kind == "human" else ".TIF"
        paths = [folder / f"{name}{sep}{spec['channels'][cnames[c]]}{ext}" for c in self.channels]
        image = np.concatenate([read_image(p) for p in paths])
        meta = {
            "path": str(paths[0]),
            "channel_names": [cnames[c] for c in self.channels],
            "pixel_size": None,
            "group": self.kind,
        }
        return Sample(image=image, name=name, meta=meta)


def cellprofiler_names(root: Path, kind: str) -> list[str]:
    """Field names of the ``human`` or ``fly`` example images."""
    folder = root / CELLPROFILER[kind]["folder"]
    if not folder.is_dir():
        raise InputError("CellProfiler example folder not found", path=folder)
    pat = re.compile(CELLPROFILER[kind]["pattern"])
    return sorted({m["field"] for p in folder.iterdir() if (m := pat.match(p.name))})

"""DeepCell 2016 (Covert lab): five cell lines, nuclear fluorescence + phase contrast, whole cells.

``deepcell_covertlab/cells/images/<line>_set<k>.tif`` are (2, H, W) uint16
(plane 0 nuclear fluorescence, plane 1 phase contrast); ``labels/`` holds the
whole-cell instances and ``labels_nuclei/`` nucleus instances of three fields.
"""

from __future__ import annotations

from pathlib import Path

from .pairs import PairLoader, pair_names

DEEPCELL_CHANNELS = ("nucleus", "phase")
DEEPCELL_ALIASES = {"dna": "nucleus", "nuclei": "nucleus", "cell": "phase", "cytoplasm": "phase"}
DEEPCELL_LINES = ("3T3", "BMDM", "HeLa-S3", "MCF10A", "RAW264.7")
_LABEL_DIRS = {"cells": "cells/labels", "nuclei": "cells/labels_nuclei"}


def deepcell_line(name: str) -> str:
    """The cell line of a field name (``"HeLa-S3_set2"`` -> ``"HeLa-S3"``)."""
    return name.rsplit("_set", 1)[0]


def deepcell_loader(root: Path, channels: list[int], target: str = "cells") -> PairLoader:
    """Loader of one field with whole-cell (``target="cells"``) or nucleus labels."""
    return PairLoader(
        Path(root),
        channels,
        DEEPCELL_CHANNELS,
        images="cells/images",
        labels=_LABEL_DIRS[target],
        group=deepcell_line,
        meta={"target": target},
    )


def deepcell_names(root: Path, target: str = "cells") -> list[str]:
    """Field names; for ``target="nuclei"`` only the fields with nucleus labels."""
    names = pair_names(Path(root) / "cells" / "images", ".tif", "DeepCell")
    if target == "nuclei":
        names = [n for n in names if (Path(root) / _LABEL_DIRS["nuclei"] / f"{n}.tif").is_file()]
    return names

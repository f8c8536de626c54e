"""Dense tissue T cells: DAPI + a membrane marker; only marker-positive cells are labelled.

Unlabelled cells are *not* background: every sample carries
``meta["partial_labels"] = True`` so scoring ignores predictions away from the
labelled cells and training can ignore unlabelled pixels.
"""

from __future__ import annotations

from pathlib import Path

from .pairs import PairLoader, pair_names

TCELLS_CHANNELS = ("DAPI", "membrane")
TCELLS_ALIASES = {"dna": "DAPI", "nucleus": "DAPI", "nuclei": "DAPI", "cell": "membrane", "cytoplasm": "membrane"}


def tcells_position(name: str) -> str:
    """The field a file shows (``M872956_JML_Position8_CD4`` -> ``M872956_JML_Position8``)."""
    return name.rsplit("_", 1)[0]


def tcells_loader(root: Path, channels: list[int]) -> PairLoader:
    """Loader of one two-plane tissue field and its marker-positive cell labels."""
    return PairLoader(Path(root), channels, TCELLS_CHANNELS, group=tcells_position, meta={"partial_labels": True})


def tcells_names(root: Path) -> list[str]:
    """File names (one per field and marker)."""
    return pair_names(Path(root) / "images", ".tif", "dense T-cell tissue")

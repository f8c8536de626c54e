"""Usiigaci (OIST): label-free phase contrast of spread cells, whole-cell instances (MIT)."""

from __future__ import annotations

from pathlib import Path

from .pairs import PairLoader, pair_names

USIIGACI_CHANNELS = ("phase",)
USIIGACI_ALIASES = {"cell": "phase", "cytoplasm": "phase", "grey": "phase", "gray": "phase"}


def usiigaci_loader(root: Path, channels: list[int]) -> PairLoader:
    """Loader of one single-channel phase-contrast field and its cell labels."""
    return PairLoader(Path(root), channels, USIIGACI_CHANNELS)


def usiigaci_names(root: Path) -> list[str]:
    """Field names (``set1`` ...), sorted by set number."""
    names = pair_names(Path(root) / "images", ".tif", "Usiigaci")
    return sorted(names, key=lambda n: int(n[3:]) if n[3:].isdigit() else 0)

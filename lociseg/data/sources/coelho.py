"""Coelho, Shariff & Murphy 2009: hand-segmented U2OS Hoechst nuclei (~110 px across)."""

from __future__ import annotations

from pathlib import Path

from .pairs import PairLoader, pair_names

COELHO_CHANNELS = ("DNA",)
COELHO_ALIASES = {"nucleus": "DNA", "nuclei": "DNA", "hoechst": "DNA", "grey": "DNA", "gray": "DNA"}


def coelho_loader(root: Path, channels: list[int]) -> PairLoader:
    """Loader of one 8-bit PNG field and its nucleus labels."""
    return PairLoader(Path(root), channels, COELHO_CHANNELS, suffix=".png")


def coelho_names(root: Path) -> list[str]:
    """Field names (``dna-N``), sorted by N."""
    names = pair_names(Path(root) / "images", ".png", "Coelho 2009")
    return sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))

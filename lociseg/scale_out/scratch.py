"""The scratch folder of a block run: each block's pass 1 result (labels, scores) and pass 2 result (final ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.files import atomic_write


def labels_path(scratch: Path, i: int) -> Path:
    """Pass 1 labels of block ``i`` over its extent (cells 1..n)."""
    return scratch / f"b{i:06d}.labels.npy"


def scores_path(scratch: Path, i: int) -> Path:
    """Pass 1 cell scores of block ``i``; written last, it marks the block done."""
    return scratch / f"b{i:06d}.scores.npy"


def final_path(scratch: Path, i: int) -> Path:
    """Pass 2 result of block ``i``: global ids of its own kept cells over its extent."""
    return scratch / f"b{i:06d}.final.npy"


def save_block(scratch: Path, index: int, labels: np.ndarray, scores: np.ndarray) -> None:
    """Store pass 1's result of a block: labels over its extent (cells 1..n) and the cells' scores.

    The scores file is written last and marks the block as done.
    """
    atomic_write(labels_path(scratch, index), lambda p: np.save(p, labels), overwrite=True)
    atomic_write(scores_path(scratch, index), lambda p: np.save(p, np.asarray(scores, np.float32)), overwrite=True)


def block_done(scratch: Path, index: int) -> np.ndarray | None:
    """The cell scores of a block that pass 1 finished (in this or an earlier run), else None."""
    p = scores_path(scratch, index)
    try:
        return np.load(p) if p.exists() and labels_path(scratch, index).exists() else None
    except (OSError, ValueError):
        return None

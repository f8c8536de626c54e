"""Per-cell tables of a label image: label, centroid, area and score of every cell."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TABLE_COLUMNS = ("label", "centroid_y", "centroid_x", "area", "score")


@dataclass
class CellTable:
    """Per-cell measurements of a label image, one row per label 1..N.

    Attributes
    ----------
    label, centroid_y, centroid_x, area, score : ndarray
        Columns; centroids in pixels of the input image, area in pixels.
    meta : dict
        How the labels were made (``diameter_used``, ``model``, ...).
    """

    label: np.ndarray
    centroid_y: np.ndarray
    centroid_x: np.ndarray
    area: np.ndarray
    score: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def to_dict(self) -> dict[str, np.ndarray]:
        """The columns, in order, as a dict of 1-D arrays (e.g. for ``pandas.DataFrame``)."""
        return {c: getattr(self, c) for c in TABLE_COLUMNS}

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the columns as CSV (header line, then one row per cell)."""
        path = Path(path)
        cols = self.to_dict()
        with open(path, "w", newline="") as f:
            f.write(",".join(TABLE_COLUMNS) + "\n")
            for row in zip(*cols.values()):
                f.write(f"{row[0]},{row[1]:.2f},{row[2]:.2f},{row[3]},{row[4]:.4f}\n")
        return path


def cell_table(
    labels: np.ndarray, scores: np.ndarray | None = None, meta: dict | None = None, *, rows: int = 512
) -> CellTable:
    """Measure every label 1..N of ``labels`` (ids assumed sequential; absent ids get area 0).

    Parameters
    ----------
    labels : (H, W) int ndarray
    scores : (N,) ndarray, optional
        Score of label ``k + 1`` at index ``k``; NaN when not given.
    meta : dict, optional
    rows : int, optional
        Rows measured at once (bounds the temporary memory on large images).
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    area = np.zeros(n + 1, np.int64)
    sy = np.zeros(n + 1)
    sx = np.zeros(n + 1)
    xs = np.arange(labels.shape[1], dtype=np.float64)
    for a in range(0, labels.shape[0], rows):
        block = labels[a : a + rows].astype(np.int64)
        area += np.bincount(block.ravel(), minlength=n + 1)
        # weighted by each pixel's row and column: the coordinate sums of every label
        ys = np.arange(a, a + len(block), dtype=np.float64)
        sy += np.bincount(block.ravel(), np.repeat(ys, block.shape[1]), minlength=n + 1)
        sx += np.bincount(block.ravel(), np.tile(xs, len(block)), minlength=n + 1)
    area = area[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = sy[1:] / area
        cx = sx[1:] / area
    score = np.full(n, np.nan, np.float32) if scores is None else np.asarray(scores, np.float32)[:n]
    return CellTable(np.arange(1, n + 1), cy, cx, area, score, dict(meta or {}))

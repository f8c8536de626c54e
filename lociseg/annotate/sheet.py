"""Contact sheets (PNG) of the foreground candidates and the editable ``choices.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..io.files import atomic_write
from ..transforms import normalize_percentile

__all__ = ["write_contact_sheet", "read_choices", "write_choices", "CHOICE_COLUMNS"]

CHOICE_COLUMNS = ("name", "chosen_index", "auto_index", "n_points", "fg_fraction", "points_inside", "threshold")


def _composite(image_channels: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) float RGB: cytoplasm green, nuclei blue (grey when one channel)."""
    ch = [np.clip(normalize_percentile(np.asarray(c, np.float32)), 0, 1) for c in np.asarray(image_channels)]
    if len(ch) == 1:
        return np.repeat(ch[0][..., None], 3, axis=2)
    nuc, cyto = ch[0], ch[1]
    return np.stack([0.6 * cyto, cyto, np.clip(nuc + 0.3 * cyto, 0, 1)], axis=-1)


def write_contact_sheet(
    path: str | os.PathLike,
    image_channels: np.ndarray,
    candidates: np.ndarray,
    points: np.ndarray,
    chosen: int,
    *,
    auto: int | None = None,
    max_panel: int = 400,
    cells: np.ndarray | None = None,
) -> Path:
    """Write a PNG with one panel per foreground candidate for a person to judge.

    Each panel shows the image (``image_channels[0]`` = nuclei in blue,
    ``[1]`` = cytoplasm in green), the candidate's outline (yellow), the
    points (red) and its index in the top-left corner; the ``chosen`` panel
    has a thick red frame (``auto``, when it differs, a thin white one).
    With ``cells`` (the machine-made cell labels) a last panel, marked
    ``cells``, outlines every cell (magenta).

    Parameters
    ----------
    image_channels : (C, H, W) array
        Nucleus then cytoplasm channel (or one channel).
    candidates : (K, H, W) bool array
    points : (N, 2) array (y, x)
    chosen : int
    max_panel : int
        Panels are downscaled (nearest) so their long side is at most this.
    """
    from PIL import Image, ImageDraw

    base = _composite(image_channels)
    H, W = base.shape[:2]
    step = max(1, int(np.ceil(max(H, W) / max_panel)))
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    # One panel per candidate (its outline, yellow), then the cells (every cell's outline, magenta).
    outlines = [
        (c & ~ndi.binary_erosion(c, border_value=1), (1.0, 1.0, 0.0), str(k))
        for k, c in enumerate(np.asarray(candidates, bool))
    ]
    if cells is not None:
        from skimage.segmentation import find_boundaries

        outlines.append((find_boundaries(np.asarray(cells), mode="inner"), (1.0, 0.0, 1.0), "cells"))
    panels = []
    for k, (edge, colour, tag) in enumerate(outlines):
        rgb = base.copy()
        edge = ndi.binary_dilation(edge, iterations=max(0, step - 1)) if step > 1 else edge
        rgb[edge] = colour
        img = Image.fromarray((rgb[::step, ::step] * 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for y, x in pts / step:
            draw.line([(x - 2, y), (x + 2, y)], fill=(255, 0, 0))
            draw.line([(x, y - 2), (x, y + 2)], fill=(255, 0, 0))
        if k == chosen:
            draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=(255, 0, 0), width=5)
        elif auto is not None and k == auto:
            draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=(255, 255, 255), width=1)
        draw.rectangle([0, 0, max(22, 8 * len(tag)), 14], fill=(0, 0, 0))
        draw.text((4, 2), tag, fill=(255, 255, 255))
        panels.append(img)
    gap = 4
    sheet = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), panels[0].height), (40, 40, 40))
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, sheet.save, overwrite=True)


def read_choices(path: str | os.PathLike) -> dict[str, dict]:
    """Rows of a ``choices.csv`` by image name ({} when the file does not exist).

    A row whose ``chosen_index`` differs from ``auto_index`` is a person's
    override; ``lociseg annotate`` keeps it on re-runs.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    out = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                row["chosen_index"] = int(row["chosen_index"])
                row["auto_index"] = int(row["auto_index"])
            except (KeyError, TypeError, ValueError):
                raise InputError(f"line {i}: chosen_index and auto_index must be integers", path=path) from None
            out[row["name"]] = row
    return out


def write_choices(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Write ``choices.csv`` (columns :data:`CHOICE_COLUMNS`, extra keys ignored), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CHOICE_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for row in rows:
                w.writerow(row)

    return atomic_write(path, write, overwrite=True)

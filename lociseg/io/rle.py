"""Kaggle Data Science Bowl 2018 run-length encoding.

A mask is a string of ``start length`` pairs; starts are 1-based pixel
indices in column-major order (down the first column, then the next).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import InputError

PathLike = str | os.PathLike

__all__ = ["rle_encode", "rle_decode", "read_rle_csv"]


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary (H, W) mask as a Kaggle DSB2018 run-length string.

    Parameters
    ----------
    mask : (H, W) ndarray
        Non-zero pixels belong to the object.

    Returns
    -------
    rle : str
        Space-separated 1-based ``start length`` pairs, column-major; empty
        for an empty mask.
    """
    flat = (np.asarray(mask) > 0).ravel(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]])))
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a Kaggle DSB2018 run-length string into a boolean (H, W) mask.

    Parameters
    ----------
    rle : str
        Space-separated 1-based ``start length`` pairs, column-major.
    shape : (H, W)
        Mask shape.

    Returns
    -------
    mask : (H, W) bool ndarray

    Raises
    ------
    ValueError
        Odd number of values or runs outside the image.
    """
    h, w = int(shape[0]), int(shape[1])
    values = np.array(rle.split(), dtype=np.int64) if rle and rle.strip() else np.zeros(0, np.int64)
    if values.size % 2:
        raise ValueError("run-length string has an odd number of values")
    starts, lengths = values[0::2] - 1, values[1::2]
    if values.size and (starts.min() < 0 or lengths.min() < 0 or (starts + lengths).max() > h * w):
        raise ValueError(f"run-length string reaches outside a {h}x{w} image")
    flat = np.zeros(h * w + 1, np.int32)
    np.add.at(flat, starts, 1)
    np.add.at(flat, starts + lengths, -1)
    return (np.cumsum(flat[:-1]) > 0).reshape((h, w), order="F")


def read_rle_csv(path: PathLike, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Read a DSB2018 run-length CSV into one label image per image id.

    Parameters
    ----------
    path : str or path-like
        CSV with columns ``ImageId`` and ``EncodedPixels`` and, as in
        ``stage1_solution.csv``, ``Height`` and ``Width``.
    shape : (H, W), optional
        Image shape for CSVs without Height/Width columns (same for all images).

    Returns
    -------
    labels : dict of str to (H, W) int32 ndarray
        Objects numbered 1..N in the order of the CSV rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    out: dict[str, np.ndarray] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "ImageId" not in fields or "EncodedPixels" not in fields:
            raise InputError(f"not a run-length CSV (columns {fields}; need ImageId, EncodedPixels)", path=path)
        for line, row in enumerate(reader, start=2):
            try:
                hw = (int(row["Height"]), int(row["Width"])) if "Height" in row and row["Height"] else shape
            except ValueError:
                raise InputError(f"line {line}: bad Height/Width", path=path) from None
            if hw is None:
                raise InputError("CSV has no Height/Width columns; pass shape=", path=path)
            image_id = row["ImageId"]
            labels = out.setdefault(image_id, np.zeros(hw, np.int32))
            if labels.shape != tuple(hw):
                raise InputError(f"line {line}: {image_id} has inconsistent sizes", path=path)
            try:
                mask = rle_decode(row["EncodedPixels"], hw)
            except ValueError as exc:
                raise InputError(f"line {line}: {exc}", path=path) from None
            if mask.any():
                labels[mask] = labels.max() + 1
    return out

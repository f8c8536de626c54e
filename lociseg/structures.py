"""Records shared by every layer: the per-cell prediction of every model type.

A model predicts, for one image (or tile), a set of instances, each a soft
mask in a small window placed somewhere in the image. Tiling keeps the
instances whose location lies in a tile's core and pastes all kept windows
into one label image (:func:`lociseg.predict.paste_instances`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Instances:
    """Instances predicted in one image.

    Attributes
    ----------
    locations : (N, 2) float32 ndarray
        Cell locations (y, x) in image pixel coordinates.
    scores : (N,) float32 ndarray
        Detection confidence in [0, 1].
    masks : (N, h, w) float32 ndarray
        Mask probabilities in [0, 1], one window per instance.
    origins : (N, 2) int64 ndarray
        Image coordinates (y, x) of each window's top-left pixel; windows may
        reach outside the image, those parts are ignored when pasting.
    """

    locations: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    origins: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if not (len(self.locations) == len(self.masks) == len(self.origins) == n):
            raise ValueError("Instances fields must have the same length")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, window: tuple[int, int] = (1, 1)) -> Instances:
        """An empty set of instances with windows of the given shape."""
        return cls(
            np.zeros((0, 2), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, *window), np.float32),
            np.zeros((0, 2), np.int64),
        )

    def select(self, index: np.ndarray) -> Instances:
        """Instances at ``index`` (boolean mask or integer indices)."""
        return Instances(self.locations[index], self.scores[index], self.masks[index], self.origins[index])

    def shift(self, dy: float, dx: float) -> Instances:
        """Instances moved by (dy, dx) pixels, e.g. from tile to image coordinates."""
        off = np.array([dy, dx])
        return Instances(
            (self.locations + off).astype(np.float32),
            self.scores,
            self.masks,
            (self.origins + off.astype(np.int64)).astype(np.int64),
        )

    @staticmethod
    def concatenate(parts: list[Instances]) -> Instances:
        """Join several sets of instances (all windows must share one shape)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Instances.empty()
        return Instances(
            np.concatenate([p.locations for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.masks for p in parts]),
            np.concatenate([p.origins for p in parts]),
        )

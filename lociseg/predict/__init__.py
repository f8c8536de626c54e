"""lociseg.predict: from model output to label images and per-cell tables.

Instances (soft masks in small windows) are pasted into label images
(:func:`paste_instances`); large images are predicted tile by tile
(:func:`predict_tiled`); :func:`load_model` / :func:`segment` wrap the whole
pipeline (channels, normalisation, scale, tiling) for raw images.
"""

from ..ops.labels import fill_label_holes
from .paste import paste_instances
from .tiling import Tile, iter_tiles, predict_tiled

__all__ = ["fill_label_holes", "paste_instances", "predict_tiled", "iter_tiles", "Tile"]

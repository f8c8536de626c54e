"""lociseg.predict: from model output to label images and per-cell tables.

Instances (soft masks in small windows) are pasted into label images
(:func:`paste_instances`); large images are predicted tile by tile
(:func:`predict_tiled`, or :func:`tile_instances` into a
:class:`StreamingPaste` that pastes each tile's cells as they come); :func:`load_model` / :func:`segment` wrap the whole
pipeline (channels, normalisation, scale, tiling) for raw images.
"""

from ..ops.labels import fill_label_holes
from .paste import StreamingPaste, paste_instances, paste_window
from .tiling import Tile, iter_tiles, predict_tiled, tile_instances

__all__ = [
    "fill_label_holes",
    "paste_instances",
    "paste_window",
    "StreamingPaste",
    "predict_tiled",
    "tile_instances",
    "iter_tiles",
    "Tile",
]

"""Segmentation beyond one process: many images and images too large for one machine's memory, on Dask.

:mod:`.blocks` cuts one large image into overlapping blocks, segments each
with the single-process tiled paster (:meth:`lociseg.predict.Segmenter.paste_tiles`)
and stitches them into one OME-Zarr label image with globally unique ids.
:mod:`.cluster` starts or joins a ``dask.distributed`` cluster whose workers
each load a model once. :mod:`.folder` segments many images
(:func:`segment_folder`, the library behind ``lociseg segment``), in this
process or on the cluster. ``dask.distributed`` and ``zarr`` are the optional
extra ``lociseg[dask]``; they are imported only when used.
"""

from .blocks import Block, block_grid, resolve_block, segment_blocks, stitch_blocks
from .cluster import cached_segmenter, connect
from .folder import FolderRun, segment_folder

__all__ = [
    "Block",
    "FolderRun",
    "block_grid",
    "cached_segmenter",
    "connect",
    "resolve_block",
    "segment_blocks",
    "segment_folder",
    "stitch_blocks",
]

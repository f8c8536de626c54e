"""Reading and writing images, label images and annotation formats.

All readers return NumPy arrays: images as (C, H, W) in their native dtype,
label images as (H, W) integers (0 = background). Converters turn other
instance annotations (per-object masks, outlines, Kaggle RLE, COCO) into
label images. Intensity normalisation is in :mod:`lociseg.transforms`.
"""

from .coco import (
    coco_rle_decode,
    coco_rle_encode,
    coco_to_labels,
    labels_to_coco,
    mask_to_polygons,
    read_coco,
)
from .image import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    LazyImage,
    read_image,
    read_image_metadata,
    validate_image,
)
from .labels import (
    fill_outline_pixels,
    label_dtype,
    masks_to_labels,
    outlines_to_labels,
    read_labels,
    relabel_sequential,
    write_labels,
)
from .rle import read_rle_csv, rle_decode, rle_encode

__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "read_image_metadata",
    "LazyImage",
    "MAX_PIXELS",
    "validate_image",
    "read_labels",
    "write_labels",
    "label_dtype",
    "relabel_sequential",
    "masks_to_labels",
    "outlines_to_labels",
    "fill_outline_pixels",
    "rle_encode",
    "rle_decode",
    "read_rle_csv",
    "labels_to_coco",
    "coco_to_labels",
    "read_coco",
    "coco_rle_encode",
    "coco_rle_decode",
    "mask_to_polygons",
]

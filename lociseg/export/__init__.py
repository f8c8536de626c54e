"""Segmentation outputs in other tools' formats (:mod:`.formats`) and model exports (:mod:`.model`)."""

from ..io.polygons import CellPolygon, label_outlines, mask_outlines
from .formats import (
    FORMATS,
    cell_measurements,
    export_labels,
    labels_to_geojson,
    write_coco,
    write_csv,
    write_geojson,
    write_imagej_rois,
    write_ome_zarr,
)

__all__ = [
    "FORMATS",
    "export_labels",
    "cell_measurements",
    "labels_to_geojson",
    "write_geojson",
    "write_imagej_rois",
    "write_ome_zarr",
    "write_coco",
    "write_csv",
    "CellPolygon",
    "label_outlines",
    "mask_outlines",
]

"""Machine-made weak annotations: points from the nuclear stain, foreground from the cytoplasm stain.

>>> from lociseg.annotate import detect_points, foreground_candidates, choose_foreground
>>> pts = detect_points(dna)                     # (N, 2) y, x
>>> cands = foreground_candidates(actin)         # (5, H, W) graph-cut candidates
>>> k, scores = choose_foreground(cands, pts)    # documented criterion
"""

from .cells import grow_cells, propagate_cells
from .classical import classical_cells, classical_nuclei, classical_phase_cells, split_touching
from .folder import MIN_NUCLEI, AnnotatedImage, CellRedraw, FolderAnnotation, annotate_folder, check_stains
from .foreground import RULES, THRESHOLDS, choose_foreground, foreground_candidates, foreground_level
from .labels import annotation_report, gt_union, partition_foreground, weak_from_labels
from .pipeline import Annotation, annotate_image, estimate_cell_scale
from .points import REF_DIAMETER, detect_points
from .refine import merge_cells
from .scale import REF_NUCLEUS_DIAMETER, mask_diameter, nucleus_diameter
from .sheet import CHOICE_COLUMNS, read_choices, write_choices, write_contact_sheet
from .sources import ImageSource, SourceImage, image_sources
from .store import (
    annotation_files,
    has_annotation,
    read_annotation,
    read_annotation_meta,
    read_candidates,
    read_cells,
    update_annotation_meta,
    with_annotations,
    write_annotation,
)

__all__ = [
    "annotate_folder",
    "image_sources",
    "check_stains",
    "MIN_NUCLEI",
    "AnnotatedImage",
    "FolderAnnotation",
    "CellRedraw",
    "ImageSource",
    "SourceImage",
    "annotation_files",
    "read_annotation_meta",
    "update_annotation_meta",
    "detect_points",
    "foreground_candidates",
    "choose_foreground",
    "foreground_level",
    "RULES",
    "THRESHOLDS",
    "REF_DIAMETER",
    "annotate_image",
    "estimate_cell_scale",
    "nucleus_diameter",
    "REF_NUCLEUS_DIAMETER",
    "Annotation",
    "weak_from_labels",
    "annotation_report",
    "gt_union",
    "partition_foreground",
    "propagate_cells",
    "grow_cells",
    "classical_nuclei",
    "classical_cells",
    "classical_phase_cells",
    "split_touching",
    "mask_diameter",
    "merge_cells",
    "write_contact_sheet",
    "read_choices",
    "write_choices",
    "CHOICE_COLUMNS",
    "write_annotation",
    "read_annotation",
    "read_cells",
    "read_candidates",
    "has_annotation",
    "with_annotations",
]

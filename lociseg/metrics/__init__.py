"""Instance segmentation metrics.

Every score is computed from one joint histogram of the ground-truth and
predicted label images (no loop over object pairs):

- :func:`overlap_pairs` – IoU of every overlapping object pair (sparse);
- :func:`match_instances` – one-to-one matching at IoU thresholds
  0.50:0.05:0.95 with TP/FP/FN, precision, recall, F1, DSB AP, PQ, FNR;
- :func:`ranked_average_precision` – COCO-style AP of score-ranked objects;
- :func:`foreground_iou` – IoU of the foreground masks;
- :func:`mask_errors` – matched objects' pixel errors split into cell-cell
  borders and foreground edges (a diagnostic);
- :func:`error_kinds` – what the unmatched objects are: poorly outlined or
  missed cells, fragments, merges, detections on background;
- :func:`evaluate_image`, :func:`aggregate`, :func:`evaluate_pairs` – all of
  the above per image, pooled over images, and as a :class:`Report`;
  :func:`evaluate` (also ``lociseg.evaluate``) takes one pair or lists.
"""

from .errors import ERROR_KINDS, error_kinds, mask_errors
from .matching import (
    DEFAULT_THRESHOLDS,
    MatchResult,
    Overlaps,
    compute_overlaps,
    drop_unlabelled,
    foreground_iou,
    match_instances,
    overlap_pairs,
)
from .ranked import average_precision_from_detections, ranked_average_precision
from .scoring import (
    SCALAR_KEYS,
    Report,
    aggregate,
    evaluate,
    evaluate_image,
    evaluate_pairs,
    report_from_results,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ERROR_KINDS",
    "MatchResult",
    "Overlaps",
    "Report",
    "SCALAR_KEYS",
    "aggregate",
    "average_precision_from_detections",
    "compute_overlaps",
    "drop_unlabelled",
    "evaluate",
    "evaluate_image",
    "evaluate_pairs",
    "error_kinds",
    "foreground_iou",
    "mask_errors",
    "match_instances",
    "overlap_pairs",
    "ranked_average_precision",
    "report_from_results",
]

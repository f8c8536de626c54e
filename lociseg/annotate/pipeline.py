"""One image from raw channels to its weak annotation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..transforms import rescale_image, rescale_labels
from .cells import propagate_cells
from .foreground import RULES, THRESHOLDS, choose_foreground, foreground_candidates, foreground_level, smoothed_stain
from .points import REF_DIAMETER, detect_points
from .scale import REF_NUCLEUS_DIAMETER, nucleus_diameter

__all__ = ["Annotation", "annotate_image", "estimate_cell_scale"]

#: Images whose cells are more than this factor larger than the reference are
#: annotated at the reference scale (downsampled) and the results mapped back:
#: the same settings, and far less work on large cells.
_DOWNSCALE_BELOW = 0.75


@dataclass
class Annotation:
    """Machine annotation of one image.

    Attributes
    ----------
    points : (N, 2) float32, (y, x)
    candidates : (K, H, W) bool
    auto_index : int
        Candidate picked by :func:`choose_foreground`.
    chosen_index : int
        Candidate used (a person's override, else ``auto_index``).
    scores : (K, 4) float, columns score, inside, far, orphan
    thresholds : tuple of float
    cells : (H, W) int32 or None
        The chosen foreground split among the points
        (:func:`~lociseg.annotate.propagate_cells`).
    """

    points: np.ndarray
    candidates: np.ndarray
    auto_index: int
    chosen_index: int
    scores: np.ndarray
    thresholds: tuple
    cells: np.ndarray | None = None

    @property
    def foreground(self) -> np.ndarray:
        return self.candidates[self.chosen_index]


def estimate_cell_scale(nucleus: np.ndarray) -> tuple[float, int]:
    """The ``diameter`` to annotate an image with, from its nuclear stain alone.

    :func:`~lociseg.annotate.scale.nucleus_diameter` relative to its value on
    BBBC018 (:data:`REF_NUCLEUS_DIAMETER`), times the reference cell
    diameter (:data:`REF_DIAMETER`, 23 px): a scale for the annotation
    settings, not a measured cell size. Returns (diameter, nuclei measured);
    (NaN, 0) when no nucleus is found.
    """
    d, n = nucleus_diameter(nucleus)
    return float(REF_DIAMETER * d / REF_NUCLEUS_DIAMETER), n


def annotate_image(
    nucleus: np.ndarray,
    cytoplasm: np.ndarray,
    *,
    diameter: float | None = None,
    thresholds=THRESHOLDS,
    override: int | None = None,
    cells: bool = True,
    rule: str = "level",
) -> Annotation:
    """Points from ``nucleus``, foreground candidates from ``cytoplasm``, and the choice.

    ``override`` forces the chosen candidate index (from an edited ``choices.csv``).
    ``rule`` picks the candidate automatically (:data:`~lociseg.annotate.foreground.RULES`).
    Smoothing of the graph cut scales with ``diameter`` (0.75 px at the reference diameter).
    The chosen foreground is then split among the points into cells
    (:func:`~lociseg.annotate.propagate_cells`) unless ``cells`` is False (then
    ``Annotation.cells`` is None: a caller that draws the cells another way skips the split).
    Images whose cells are much larger than the reference (``diameter`` > 23 / 0.75 px)
    are annotated downsampled to the reference scale; points, candidates and cells are
    returned on the input's pixel grid.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if diameter is not None and REF_DIAMETER / diameter < _DOWNSCALE_BELOW:
        factor = REF_DIAMETER / float(diameter)
        small = rescale_image(np.stack([nucleus, cytoplasm]).astype(np.float32), factor)
        ann = annotate_image(
            small[0], small[1], diameter=None, thresholds=thresholds, override=override, cells=cells, rule=rule
        )
        shape = np.shape(nucleus)
        ann.points = ((ann.points + 0.5) / factor - 0.5).astype(np.float32)
        ann.candidates = np.stack([rescale_labels(c, shape) for c in ann.candidates])
        if ann.cells is not None:
            ann.cells = rescale_labels(ann.cells, shape)
        return ann
    pts = detect_points(nucleus, diameter=diameter)
    # 0.75 px and the weak Potts weight (0.5) of foreground_candidates: chosen on the BBBC018 train split by
    # the cells made from the foreground (BENCHMARKS.md, "Machine annotations on BBBC018").
    smoothing = 0.75 if diameter is None else 0.75 * diameter / REF_DIAMETER
    smooth = smoothed_stain(cytoplasm, smoothing)  # once, for the candidates and the level
    cands = foreground_candidates(smooth, thresholds=thresholds, smoothing=0, normalize=False)
    level = foreground_level(smooth, smoothing=0, normalize=False) if rule == "level" else None
    auto, scores = choose_foreground(cands, pts, thresholds=thresholds, level=level)
    chosen = auto
    if override is not None:
        if not 0 <= override < len(cands):
            raise ValueError(f"chosen index {override} out of range 0..{len(cands) - 1}")
        chosen = int(override)
    split = propagate_cells(cands[chosen], pts, nucleus, cytoplasm, diameter=diameter) if cells else None
    return Annotation(pts, cands, auto, chosen, scores, tuple(thresholds), split)

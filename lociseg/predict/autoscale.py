"""The automatic scale of :meth:`~lociseg.predict.api.Segmenter.segment`: one pass, checked by the masks.

With a size model (:mod:`~lociseg.predict.size_model`) the diameter comes
from one encoder pass (:func:`estimate_scale`); the image (a central window
of a larger one) is segmented at it and the confident masks, through the
model's mask response, imply a diameter of their own; their geometric mean,
when more than :data:`~lociseg.predict.size_model.RESEGMENT` away, is
segmented again (:func:`paste_checked`). Without a size model, or with too
few confident cells to check, the ladder search of
:mod:`~lociseg.predict.scale_search` decides. docs/scale.md describes it.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch

from ..transforms import scaled_shape
from .scale_search import ScaleEstimate, search_window
from .size_model import (
    CHECK_SIDE,
    RESEGMENT,
    SizeModel,
    estimate_diameter,
    has_encoder,
    median_mask_diameter,
    refine_diameter,
    scale_agreement,
    views_window,
)

log = logging.getLogger(__name__)

UNSURE = 0.35
"""Confidence below which the estimate is reported unsure (as :data:`lociseg.predict.api.UNSURE`)."""


def load_size_model(model: torch.nn.Module) -> SizeModel | None:
    """The size model stored with a loaded network's checkpoint, if it has one and an encoder to feed it."""
    folder = getattr(model, "checkpoint_path", None)
    return SizeModel.load(folder) if folder is not None and has_encoder(model) else None


def scale_factor(spec: Any, diameter: float) -> float:
    """Rescaling factor for cells ``diameter`` px across, for a model of :class:`~lociseg.models.base.InputSpec` ``spec``.

    ``target_diameter / diameter``; a model with a ``scale_range`` sees cells
    within it at the image's own scale, others rescaled only to the nearer
    end of the range.
    """
    if spec.scale_range:
        return float(np.clip(diameter, spec.scale_range[0], spec.scale_range[1])) / float(diameter)
    return float(spec.target_diameter) / float(diameter)


#: Smaller images take the ladder search: the size model was fitted on views of fields at least this large
#: (on a 256 px crop of a BBBC018 field it read 13 px for cells of 22 px), and the search is cheap there.
MIN_ONE_PASS_SIDE = 512


def estimate_scale(seg: Any, image: np.ndarray, bounds: np.ndarray) -> ScaleEstimate:
    """The cell diameter of a raw (C, H, W) image or LazyImage, as ``segment`` estimates it before its check.

    One encoder pass over the central views with the Segmenter's size model;
    the ladder search (``seg.search_scale_window``) without one, for an image
    with a side under :data:`MIN_ONE_PASS_SIDE`, or when the estimate falls
    outside the sizes the size model was fitted on.
    """
    sm = seg.size_model
    if sm is None or min(image.shape[-2:]) < MIN_ONE_PASS_SIDE:
        return seg.search_scale_window(image, bounds)
    window = np.asarray(image[(..., *views_window(image.shape[-2:], sm.views))])
    d = estimate_diameter(sm, seg.model.backbone, seg.normalize(window, bounds), seg.device)
    if not sm.in_range(d):
        log.info("size model estimate %.1f px outside its fitted range: searching the scale", d)
        return seg.search_scale_window(image, bounds)
    empty = np.zeros(0)
    return ScaleEstimate(d, float(seg.spec.target_diameter) / d, 1.0, empty, empty, empty, method="size-model")


def paste_at(seg: Any, image: np.ndarray, bounds: np.ndarray, diameter: float, *, min_area: int, **settings: Any):
    """``seg.paste_tiles`` at the factor for ``diameter``, ``min_area`` given at model scale."""
    factor = scale_factor(seg.spec, diameter)
    model_shape = scaled_shape(image.shape[-2:], factor)
    area_scale = (image.shape[-2] / model_shape[0]) * (image.shape[-1] / model_shape[1])
    return seg.paste_tiles(image, bounds, factor, min_area=max(1, int(round(min_area * area_scale))), **settings)


def check_scale(seg: Any, image: np.ndarray, bounds: np.ndarray, search: ScaleEstimate, found, settings: dict):
    """Check a one-pass diameter by the masks ``found`` = (labels, scores) it gave; segment again where they disagree.

    Returns the estimate (its ``confidence`` the agreement of the two), the
    diameter used, labels, scores and the diameter the masks imply (NaN with
    fewer than three confident cells, when the ladder search decides).
    """
    diameter = search.diameter
    implied = refine_diameter(seg.size_model, median_mask_diameter(*found), diameter)
    search.confidence = scale_agreement(diameter, implied)
    if not math.isfinite(implied):
        ladder = seg.search_scale_window(image, bounds)
        if ladder.found and abs(math.log(ladder.diameter / diameter)) > math.log(RESEGMENT):
            return ladder, ladder.diameter, paste_at(seg, image, bounds, ladder.diameter, **settings), implied
        search.confidence = max(search.confidence, ladder.confidence)
        return search, diameter, found, implied
    both = math.sqrt(diameter * implied)  # the regression and the masks err independently
    if abs(math.log(both / diameter)) > math.log(RESEGMENT):
        diameter = both
        found = paste_at(seg, image, bounds, diameter, **settings)
    search.diameter, search.factor = diameter, scale_factor(seg.spec, diameter)
    return search, diameter, found, implied


def paste_checked(seg: Any, image: np.ndarray, bounds: np.ndarray, diameter: float, search, **settings: Any):
    """Segment at ``diameter``; a one-pass estimate is first checked (:func:`check_scale`) on a central window.

    Returns labels, scores, the diameter used, the estimate and extra
    metadata (``diameter_one_pass``, ``diameter_from_masks``).
    """
    if search is None or search.method != "size-model":
        return (*paste_at(seg, image, bounds, diameter, **settings), diameter, search, {})
    shape = tuple(image.shape[-2:])
    ys, xs = search_window(shape, CHECK_SIDE)  # on a large image a re-segmentation costs the window only
    window = (ys.start, ys.stop, xs.start, xs.stop)
    whole = window == (0, shape[0], 0, shape[1])
    check = settings if whole else {**settings, "region": window}
    found = paste_at(seg, image, bounds, diameter, **check)
    search, used, found, implied = check_scale(seg, image, bounds, search, found, check)
    if not whole:
        found = paste_at(seg, image, bounds, used, **settings)
    sure = search.confidence >= UNSURE
    warnings.warn(
        f"cell diameter estimated at {used:.1f} px "
        + (
            f"(confidence {search.confidence:.2f}; give it with --diameter, or diameter= in Python)"
            if sure
            else f"but unsure (confidence {search.confidence:.2f}): check the result or give the diameter (--diameter)"
        ),
        stacklevel=3,
    )
    extra = {"diameter_one_pass": float(diameter), "diameter_from_masks": implied if math.isfinite(implied) else None}
    return (*found, used, search, extra)

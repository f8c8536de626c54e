"""Segment raw images with a trained model: the Python API behind ``lociseg segment``.

>>> seg = load_model("runs/bbbc018/best.pt")                     # doctest: +SKIP
>>> labels, table = seg.segment(image, channels=["actin", "DNA"],
...                             channel_names=["actin", "DNA", "pH3"])  # doctest: +SKIP

:meth:`Segmenter.segment` selects and checks channels, normalises with the
model's percentiles, rescales so cells are ``input.target_diameter`` px
across, predicts (tile by tile when the image is larger than a tile), maps
the instances back to the original pixel grid and pastes them into a label
image, with a per-cell table.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..device import choose_device
from ..errors import ConfigError, InputError
from ..io import LazyImage, normalize_percentile, percentile_bounds, write_labels
from ..io.files import atomic_write, sha256_file
from ..models.checkpoint import load_checkpoint
from ..models.pretrained import resolve_model
from ..structures import Instances
from ..transforms import RescaledImage, rescale_image, rescale_instances, scaled_shape
from .paste import OVERLAP_RULES, StreamingPaste
from .scale_search import HIGH_SCORE, ScaleEstimate, search_scale, search_window
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
from .tiling import predict_tiled, tile_instances

log = logging.getLogger(__name__)

UNSURE = 0.35
"""Scale-search confidence below which :meth:`Segmenter.segment` warns that the estimate is unsure."""

TABLE_COLUMNS = ("label", "centroid_y", "centroid_x", "area", "score")


@dataclass
class CellTable:
    """Per-cell measurements of a label image, one row per label 1..N.

    Attributes
    ----------
    label, centroid_y, centroid_x, area, score : ndarray
        Columns; centroids in pixels of the input image, area in pixels.
    meta : dict
        How the labels were made (``diameter_used``, ``model``, ...).
    """

    label: np.ndarray
    centroid_y: np.ndarray
    centroid_x: np.ndarray
    area: np.ndarray
    score: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def to_dict(self) -> dict[str, np.ndarray]:
        """The columns, in order, as a dict of 1-D arrays (e.g. for ``pandas.DataFrame``)."""
        return {c: getattr(self, c) for c in TABLE_COLUMNS}

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the columns as CSV (header line, then one row per cell)."""
        path = Path(path)
        cols = self.to_dict()
        with open(path, "w", newline="") as f:
            f.write(",".join(TABLE_COLUMNS) + "\n")
            for row in zip(*cols.values()):
                f.write(f"{row[0]},{row[1]:.2f},{row[2]:.2f},{row[3]},{row[4]:.4f}\n")
        return path


def cell_table(
    labels: np.ndarray, scores: np.ndarray | None = None, meta: dict | None = None, *, rows: int = 512
) -> CellTable:
    """Measure every label 1..N of ``labels`` (ids assumed sequential; absent ids get area 0).

    Parameters
    ----------
    labels : (H, W) int ndarray
    scores : (N,) ndarray, optional
        Score of label ``k + 1`` at index ``k``; NaN when not given.
    meta : dict, optional
    rows : int, optional
        Rows measured at once (bounds the temporary memory on large images).
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    area = np.zeros(n + 1, np.int64)
    sy = np.zeros(n + 1)
    sx = np.zeros(n + 1)
    xs = np.arange(labels.shape[1], dtype=np.float64)
    for a in range(0, labels.shape[0], rows):
        block = labels[a : a + rows].astype(np.int64)
        area += np.bincount(block.ravel(), minlength=n + 1)
        # weighted by each pixel's row and column: the coordinate sums of every label
        ys = np.arange(a, a + len(block), dtype=np.float64)
        sy += np.bincount(block.ravel(), np.repeat(ys, block.shape[1]), minlength=n + 1)
        sx += np.bincount(block.ravel(), np.tile(xs, len(block)), minlength=n + 1)
    area = area[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = sy[1:] / area
        cx = sx[1:] / area
    score = np.full(n, np.nan, np.float32) if scores is None else np.asarray(scores, np.float32)[:n]
    return CellTable(np.arange(1, n + 1), cy, cx, area, score, dict(meta or {}))


class Segmenter:
    """A model ready to segment raw images.

    Parameters
    ----------
    model : SegmentationModel
        Its ``config.input`` (:class:`lociseg.models.base.InputSpec`) says
        which channels it takes, how to normalise and at which cell size.
    device : str, optional
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    name : str, optional
        Recorded in the output metadata (e.g. the checkpoint path).
    pad_multiple : int, optional
        Tiles are zero-padded (after normalisation) to a multiple of this, as
        the networks down-sample by up to 32.

    Attributes
    ----------
    train_diameter : float or None
        Cell diameter (px) of the training images, from the checkpoint's
        ``metrics.json`` (None when unknown). Weak models learned their mask
        size at this scale; ``segment(diameter="train")`` uses it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "auto",
        name: str | None = None,
        pad_multiple: int = 32,
    ):
        self.device = choose_device(device)
        # Channels-last lets the convolutions and the ConvNeXt blocks' channel MLPs run without
        # layout copies (about 25 % faster on CPU); numerically the same network.
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.name = name or type(model).__name__
        self.pad_multiple = int(pad_multiple)
        spec = getattr(getattr(model, "config", None), "input", None)
        if spec is None:
            raise ConfigError(f"model {self.name} has no config.input (InputSpec)")
        self.spec = spec
        self.train_diameter = _train_diameter(getattr(model, "checkpoint_path", None))
        folder = getattr(model, "checkpoint_path", None)
        self.size_model = SizeModel.load(folder) if folder is not None and has_encoder(model) else None

    def __repr__(self) -> str:
        return f"Segmenter({self.name}, device={self.device}, in_channels={self.spec.in_channels}, target_diameter={self.spec.target_diameter})"

    # ------------------------------------------------------------------ steps

    def select_channels(
        self,
        image: np.ndarray,
        channels: Sequence[int | str] | None = None,
        channel_names: Sequence[str] | None = None,
        *,
        channel_axis: int | None = 0,
    ) -> np.ndarray:
        """Return the (C, H, W) channels the model takes, in its order.

        ``channels`` picks by index or by name (names need ``channel_names``,
        the names of the image's channels). Without ``channels``, the model's
        own channel names are looked up in ``channel_names`` when given; an
        image whose channel count differs from the model's is an error,
        except identical channels (grey stored as RGB) for a 1-channel model
        and absent ``optional`` channels of the model (zero planes).
        """
        lazy = isinstance(image, LazyImage)  # (C, H, W) read on demand: select without reading
        image = image if lazy else np.asarray(image)
        if image.ndim == 2:
            image = image[None]
        elif image.ndim == 3:
            if channel_axis is None:
                raise InputError(f"image has shape {image.shape}: a 3-D image needs a channel_axis")
            if not lazy:
                image = np.moveaxis(image, channel_axis, 0)
        else:
            raise InputError(f"image must be (H, W) or (C, H, W), got shape {image.shape}")
        want = int(self.spec.in_channels)
        names = [str(n).lower() for n in channel_names] if channel_names is not None else None
        if names is not None and len(names) != image.shape[0]:
            raise InputError(f"{len(names)} channel names given for an image with {image.shape[0]} channel(s)")
        if (
            channels is None
            and names is not None
            and self.spec.channels
            and all(c.lower() in names for c in self.spec.channels)
        ):
            channels = list(self.spec.channels)
        if channels is not None:
            index = []
            for c in channels:
                if isinstance(c, str) and not c.lstrip("-").isdigit():
                    if names is None:
                        raise InputError(f"channel {c!r} given by name but the image's channel names are unknown")
                    if c.lower() not in names:
                        raise InputError(f"no channel named {c!r}; the image has {list(channel_names)}")
                    index.append(names.index(c.lower()))
                else:
                    i = int(c)
                    if not -image.shape[0] <= i < image.shape[0]:
                        raise InputError(
                            f"channel index {i} out of range for an image with {image.shape[0]} channel(s)"
                        )
                    index.append(i)
            image = image.select(index) if lazy else image[index]
        if image.shape[0] < want and self.spec.missing_ok(image.shape[0]):
            image = np.asarray(image)  # absent optional stains: zero planes, as the model saw in training
            return np.concatenate([image, np.zeros((want - image.shape[0], *image.shape[1:]), image.dtype)])
        if image.shape[0] != want:
            if want == 1 and channels is None and all(np.array_equal(image[0], c) for c in image[1:]):
                return image[:1]  # grey image stored as RGB
            model_names = f" ({', '.join(self.spec.channels)})" if self.spec.channels else ""
            raise InputError(
                f"image has {image.shape[0]} channel(s) but the model takes {want}{model_names}; "
                "choose them with channels=[...] (--channels)"
            )
        return image

    def normalize(self, image: np.ndarray, bounds: np.ndarray | None = None) -> np.ndarray:
        """Per-channel percentile normalisation with the model's percentiles.

        ``bounds`` (:meth:`percentiles` of the whole image) normalises a tile
        of an image as the whole image would be.
        """
        return normalize_percentile(image, self.spec.normalize_low, self.spec.normalize_high, bounds=bounds)

    def percentiles(self, image: np.ndarray) -> np.ndarray:
        """The model's normalisation percentiles of each channel of a (C, H, W) image, (2, C, 1, 1)."""
        return percentile_bounds(image, self.spec.normalize_low, self.spec.normalize_high)

    @torch.inference_mode()
    def predict_tile(self, tile: np.ndarray, augment: bool = False) -> Instances:
        """Instances of one normalised (C, h, w) tile at model scale, in tile coordinates.

        ``augment`` averages the four flips of the tile (about 4x the time).
        """
        h, w = tile.shape[-2:]
        m = self.pad_multiple
        ph, pw = -h % m, -w % m
        if ph or pw:
            tile = np.pad(tile, ((0, 0), (0, ph), (0, pw)))
        x = torch.from_numpy(np.ascontiguousarray(tile, np.float32))[None].to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        # only ask for augment when wanted: models outside lociseg may not take it
        inst = self.model.predict_instances(x, augment=True) if augment else self.model.predict_instances(x)
        if len(inst) and (ph or pw):
            loc = inst.locations
            inst = inst.select((loc[:, 0] < h) & (loc[:, 1] < w))
        return inst

    def predict_instances(
        self,
        image: np.ndarray,
        factor: float = 1.0,
        *,
        tile_size: int = 1024,
        overlap: int | None = None,
        progress: bool | None = False,
        augment: bool = False,
    ) -> tuple[Instances, tuple[int, int]]:
        """Rescale a normalised image by ``factor`` and predict (tiled); returns instances at model scale and that shape."""
        scaled = rescale_image(image, factor)
        if overlap is None:
            overlap = self.default_overlap()
        inst = predict_tiled(
            functools.partial(self.predict_tile, augment=augment),
            scaled,
            tile_size=tile_size,
            overlap=overlap,
            align=self.pad_multiple,
            progress=progress,
        )
        return inst, tuple(scaled.shape[-2:])

    def paste_tiles(
        self,
        image: np.ndarray,
        bounds: np.ndarray,
        factor: float,
        *,
        tile_size: int = 1024,
        overlap: int | None = None,
        progress: bool | None = False,
        augment: bool = False,
        chunk: int = 64,
        region: tuple[int, int, int, int] | None = None,
        tiles: tuple[int, int, int, int] | None = None,
        keep: tuple[float, float, float, float] | None = None,
        **rules: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict a raw (C, H, W) image tile by tile and paste each tile's cells as it comes.

        Each tile is rescaled (:class:`~lociseg.transforms.RescaledImage`)
        and normalised with ``bounds`` (:meth:`percentiles`) on its own, so
        besides the image only the label image and one tile's instances are
        held (normalising after the bilinear rescale gives the same values
        as before it, to float rounding). ``image`` only needs NumPy-style
        slicing, so a lazily read image works. A tile's cells are mapped to
        the input grid and pasted ``chunk`` at a time. ``rules`` go to
        :class:`~lociseg.predict.paste.StreamingPaste`, ``min_area`` in
        pixels of ``image``.

        One block of a larger image (:mod:`lociseg.scale_out.blocks`):
        ``region`` = ``(y0, y1, x0, x1)`` in pixels of ``image`` predicts and
        pastes only that window (the labels have its shape), with tiles cut
        from the whole image's rescaled grid, so every tile is seen exactly
        as in a whole-image pass; ``tiles`` = ``(y0, y1, x0, x1)`` at model
        scale is the window tiled (default: ``region``'s, its start on the
        network's grid), e.g. whole tiles of the whole image's tiling;
        ``keep`` (in pixels of ``image``) pastes only the cells located
        there (the part of the window the block owns).

        Returns
        -------
        labels : (H, W) uint16 or uint32 ndarray
            Cells 1..N by descending score.
        scores : (N,) float32 ndarray
        """
        shape = tuple(image.shape[-2:])
        source = image if abs(factor - 1.0) < 1e-6 else RescaledImage(image, factor)
        model_shape = tuple(source.shape[-2:])
        fill_holes = bool(rules.pop("fill_holes", True))
        ry0, ry1, rx0, rx1 = (0, shape[0], 0, shape[1]) if region is None else region
        paster = StreamingPaste((ry1 - ry0, rx1 - rx0), **rules)
        to_model = np.array(model_shape, np.float64) / np.array(shape, np.float64)
        m = self.pad_multiple  # the region at model scale, its start on the network's grid
        model_region = tiles or (
            int(ry0 * to_model[0]) // m * m,
            min(model_shape[0], int(math.ceil(ry1 * to_model[0]))),
            int(rx0 * to_model[1]) // m * m,
            min(model_shape[1], int(math.ceil(rx1 * to_model[1]))),
        )

        def predict(tile: np.ndarray) -> Instances:
            return self.predict_tile(self.normalize(tile, bounds), augment=augment)

        for inst in tile_instances(
            predict,
            source,
            tile_size=tile_size,
            overlap=self.default_overlap() if overlap is None else overlap,
            align=self.pad_multiple,
            progress=progress,
            region=None if region is None else model_region,
        ):
            # best first, a chunk at a time: the same as pasting the tile at once (earlier cells of a tile
            # score higher, so they never yield to later ones), but only a chunk of windows is held at the
            # input's scale, where they are 1/factor^2 larger
            order = np.argsort(-np.asarray(inst.scores, np.float64), kind="stable")
            if keep is not None:  # location on the input grid (rescale_instances' pixel-centre rule)
                loc = (np.asarray(inst.locations, np.float64)[order] + 0.5) / to_model - 0.5
                inside = (loc[:, 0] >= keep[0]) & (loc[:, 0] < keep[1]) & (loc[:, 1] >= keep[2]) & (loc[:, 1] < keep[3])
                order = order[inside]
            for a in range(0, len(order), chunk):
                part = rescale_instances(inst.select(order[a : a + chunk]), model_shape, shape)
                paster.add(part if region is None else part.shift(-ry0, -rx0))
        return paster.finish(fill_holes=fill_holes)

    def _check_scale(
        self,
        image: np.ndarray,
        bounds: np.ndarray,
        search: ScaleEstimate,
        labels: np.ndarray,
        scores: np.ndarray,
        settings: dict,
    ) -> tuple[ScaleEstimate, float, np.ndarray, np.ndarray, float]:
        """Check a one-pass diameter by the masks it gave; segment again where they disagree.

        The median confident mask, through the size model's mask response
        (:func:`~lociseg.predict.size_model.refine_diameter`), implies a
        diameter. Both estimates err (the regression by about 20 %, the masks
        by their own bias on a field, amplified by the inversion), so their
        geometric mean is the better one; when it is more than
        :data:`~lociseg.predict.size_model.RESEGMENT` from the diameter used,
        the image is segmented once more at it. With too few confident cells
        to measure, the ladder search decides. Returns the estimate (its
        ``confidence`` the agreement of the two), the diameter used, labels,
        scores and the diameter the masks imply.
        """
        diameter = search.diameter
        implied = refine_diameter(self.size_model, median_mask_diameter(labels, scores), diameter)
        search.confidence = scale_agreement(diameter, implied)
        if not math.isfinite(implied):
            ladder = self.search_scale_window(image, bounds)
            if ladder.found and abs(math.log(ladder.diameter / diameter)) > math.log(RESEGMENT):
                diameter = ladder.diameter
                labels, scores = self._paste_at(image, bounds, self.scale_factor(diameter), **settings)
                return ladder, diameter, labels, scores, implied
            search.confidence = max(search.confidence, ladder.confidence)
            return search, diameter, labels, scores, implied
        both = math.sqrt(diameter * implied)
        if abs(math.log(both / diameter)) > math.log(RESEGMENT):
            diameter = both
            labels, scores = self._paste_at(image, bounds, self.scale_factor(diameter), **settings)
        search.diameter, search.factor = diameter, self.scale_factor(diameter)
        return search, diameter, labels, scores, implied

    def _paste_at(
        self, image: np.ndarray, bounds: np.ndarray, factor: float, *, min_area: int, **settings: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`paste_tiles` at ``factor`` with ``min_area`` given at model scale."""
        model_shape = scaled_shape(image.shape[-2:], factor)
        area_scale = (image.shape[-2] / model_shape[0]) * (image.shape[-1] / model_shape[1])
        return self.paste_tiles(image, bounds, factor, min_area=max(1, int(round(min_area * area_scale))), **settings)

    def default_overlap(self) -> int:
        """Tile overlap at model scale: 4 target diameters, at least 128 px, so cells at seams are whole."""
        return max(128, int(math.ceil(4 * self.spec.target_diameter)))

    def estimate_diameter(self, image: np.ndarray, **kwargs: Any) -> float:
        """Estimated cell diameter (px) of a normalised (C, H, W) image (:meth:`search_scale`); NaN when none is found."""
        return self.search_scale(image, **kwargs).diameter

    def search_scale(self, image: np.ndarray, **kwargs: Any) -> ScaleEstimate:
        """Search the scale of a normalised (C, H, W) image (:func:`~lociseg.predict.scale_search.search_scale`).

        ``kwargs`` go to :func:`~lociseg.predict.scale_search.search_scale`.
        """
        return search_scale(self._locate, image, float(self.spec.target_diameter), predict=self.predict_tile, **kwargs)

    def search_scale_window(self, image: np.ndarray, bounds: np.ndarray) -> ScaleEstimate:
        """The scale search as :meth:`segment` runs it on a raw (C, H, W) image or LazyImage.

        Only the central :func:`~lociseg.predict.scale_search.search_window`
        is read, normalised with ``bounds`` (:meth:`percentiles` of the whole image).
        """
        return self.search_scale(self.normalize(np.asarray(image[(..., *search_window(image.shape[-2:]))]), bounds))

    def estimate_scale(self, image: np.ndarray, bounds: np.ndarray) -> ScaleEstimate:
        """The cell diameter of a raw (C, H, W) image or LazyImage, as :meth:`segment` estimates it.

        With a size model (:attr:`size_model`) one encoder pass over the
        central views (:func:`~lociseg.predict.size_model.estimate_diameter`);
        the ladder search (:meth:`search_scale_window`) without one, or when
        the estimate falls outside the sizes the size model was fitted on.
        """
        if self.size_model is None:
            return self.search_scale_window(image, bounds)
        window = np.asarray(image[(..., *views_window(image.shape[-2:], self.size_model.views))])
        d = estimate_diameter(self.size_model, self.model.backbone, self.normalize(window, bounds), self.device)
        if not self.size_model.in_range(d):
            log.info("size model estimate %.1f px outside its fitted range: searching the scale", d)
            return self.search_scale_window(image, bounds)
        f = float(self.spec.target_diameter) / d
        empty = np.zeros(0)
        return ScaleEstimate(d, f, 1.0, empty, empty, empty, method="size-model")

    def scale_factor(self, diameter: float) -> float:
        """Rescaling factor for an image of cells ``diameter`` px across.

        ``target_diameter / diameter``; a model with a ``scale_range``
        (:class:`~lociseg.models.base.InputSpec`) sees cells within it at the
        image's own scale, others rescaled only to the nearer end of the range.
        """
        rng = self.spec.scale_range
        if rng:
            return float(np.clip(diameter, rng[0], rng[1])) / float(diameter)
        return float(self.spec.target_diameter) / float(diameter)

    @torch.inference_mode()
    def _locate(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Locations and scores of a normalised (B, C, S, S) batch: the model's cheap location pass when it has one."""
        if hasattr(self.model, "predict_locations"):
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
            return self.model.predict_locations(x.contiguous(memory_format=torch.channels_last))
        return [(i.locations, i.scores) for i in map(self.predict_tile, batch)]

    # ------------------------------------------------------------------ public

    def segment(
        self,
        image: np.ndarray,
        *,
        diameter: float | str | None = None,
        channels: Sequence[int | str] | None = None,
        channel_names: Sequence[str] | None = None,
        channel_axis: int | None = 0,
        tile_size: int = 1024,
        overlap: int | None = None,
        threshold: float = 0.5,
        min_area: int = 8,
        progress: bool | None = False,
        augment: bool = False,
        overlaps: str = "score",
        fill_holes: bool = True,
    ) -> tuple[np.ndarray, CellTable]:
        """Segment every cell of a raw image.

        Parameters
        ----------
        image : (H, W) or (C, H, W) ndarray, or LazyImage
            Raw pixel values of any dtype (normalised here). A
            :class:`~lociseg.io.LazyImage` (``read_image(lazy_above=)``) is
            read tile by tile, never whole (the scale search reads one central
            window, :data:`~lociseg.predict.scale_search.SEARCH_SIDE` px a side).
        diameter : float or "train", optional
            Typical cell diameter in pixels of this image. ``None`` estimates
            it (:meth:`estimate_scale`: one encoder pass with the model's size
            model, checked by the masks it gives and segmented again when
            they disagree; else :meth:`search_scale` on the central
            :func:`~lociseg.predict.scale_search.search_window`; docs/scale.md)
            and warns with the value used and how sure it is (an "unsure"
            warning below :data:`UNSURE`);
            ``"train"`` takes :attr:`train_diameter` (images at the training
            images' magnification; how weak models are scored).
        channels : sequence of int or str, optional
            Image channels to feed the model, in the model's order.
        channel_names : sequence of str, optional
            Names of the image's channels, to pick ``channels`` by name.
        channel_axis : int or None, optional
            Axis of the channels in a 3-D ``image`` (skimage convention).
        tile_size : int, optional
            Tile side at model scale; larger images are predicted tile by tile.
        overlap : int, optional
            Tile overlap at model scale (default :meth:`default_overlap`).
        threshold : float, optional
            Mask probability threshold.
        min_area : int, optional
            Smallest cell kept, in pixels at model scale.
        progress : bool or None, optional
            tqdm bar over tiles.
        augment : bool, optional
            Average the predictions of the four flips of each tile (test-time
            augmentation; about 4x the time). The diameter estimate does not
            use it.
        overlaps : {"score", "probability"}, optional
            Where two cells' masks overlap, the pixel goes to the
            higher-scoring cell (default) or to the more confident mask
            (better borders between touching irregular cells; see
            :func:`~lociseg.predict.paste_instances`).
        fill_holes : bool, optional
            Give background enclosed by one cell to that cell.

        Returns
        -------
        labels : (H, W) uint16 or uint32 ndarray
            Cells 1..N (by descending score) on the input image's pixel grid.
        table : CellTable
            One row per label; ``table.meta`` records ``diameter_used``,
            ``diameter_estimated``, ``scale_factor``, ``model``, settings,
            ``high_score_fraction`` (share of cells scoring at least
            :data:`~lociseg.predict.scale_search.HIGH_SCORE`) and, when
            estimated, ``scale_confidence``, ``scale_unsure`` and
            ``scale_search`` (zooms tried).
        """
        if overlaps not in OVERLAP_RULES:  # before any inference
            raise ConfigError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
        min_tile = (self.default_overlap() if overlap is None else overlap) + self.pad_multiple
        if tile_size < min_tile:
            raise ConfigError(
                f"tile_size must be at least {min_tile} px for this model (overlap + {self.pad_multiple}), got {tile_size}"
            )
        explicit = diameter is not None and not isinstance(diameter, str)
        img = self.select_channels(image, channels, channel_names, channel_axis=channel_axis)
        shape = tuple(img.shape[-2:])
        bounds = self.percentiles(img)
        if isinstance(diameter, str):
            if diameter != "train":
                raise ConfigError(f"diameter must be a number of pixels or 'train', got {diameter!r}")
            if self.train_diameter is None:
                raise ConfigError(
                    f"model {self.name} records no training diameter (no metrics.json); give diameter in px"
                )
            diameter = self.train_diameter
        estimated = diameter is None
        search = None
        if estimated:
            search = self.estimate_scale(img, bounds)
            diameter = search.diameter
            if not math.isfinite(diameter):
                # the training images' scale if known: a weak model's masks only fit cells at that scale
                diameter = float(self.train_diameter or self.spec.target_diameter)
                warnings.warn(
                    f"no cells found to estimate the diameter; using the model's {diameter:.1f} px", stacklevel=2
                )
        elif not (diameter > 0 and math.isfinite(diameter)):
            raise ConfigError(f"diameter must be a positive number of pixels, got {diameter}")
        if explicit and diameter > max(shape):
            raise ConfigError(f"diameter must be at most the image size ({shape[0]} x {shape[1]} px), got {diameter:g}")
        settings = dict(
            tile_size=tile_size,
            overlap=overlap,
            progress=progress,
            augment=augment,
            threshold=threshold,
            min_area=min_area,
            overlaps=overlaps,
            fill_holes=fill_holes,
        )
        factor = self.scale_factor(diameter)
        if factor * max(shape) > 65536:
            raise ConfigError(f"diameter {diameter:g} rescales a {shape} image by {factor:.3g}: check the value")
        one_pass = implied = None
        if search is not None and search.method == "size-model":
            # checked on a central window: on a large image a re-segmentation costs the window, not the image
            ys, xs = search_window(shape, CHECK_SIDE)
            window = (ys.start, ys.stop, xs.start, xs.stop)
            whole = window == (0, shape[0], 0, shape[1])
            check = settings if whole else {**settings, "region": window}
            one_pass = diameter
            labels, scores = self._paste_at(img, bounds, factor, **check)
            search, diameter, labels, scores, implied = self._check_scale(img, bounds, search, labels, scores, check)
            factor = self.scale_factor(diameter)
            if not whole:
                labels, scores = self._paste_at(img, bounds, factor, **settings)
        else:
            labels, scores = self._paste_at(img, bounds, factor, **settings)
        if search is not None and search.found:
            sure = search.confidence >= UNSURE
            warnings.warn(
                f"cell diameter estimated at {diameter:.1f} px "
                + (
                    f"(confidence {search.confidence:.2f}; pass diameter= to set it)"
                    if sure
                    else f"but unsure (confidence {search.confidence:.2f}): check the result or pass diameter="
                ),
                stacklevel=2,
            )
        meta = {
            "model": self.name,
            "diameter_used": float(diameter),
            "diameter_estimated": bool(estimated),
            "target_diameter": float(self.spec.target_diameter),
            "scale_factor": factor,
            "image_shape": list(shape),
            "tile_size": int(tile_size),
            "overlap": int(overlap if overlap is not None else self.default_overlap()),
            "threshold": float(threshold),
            "augment": bool(augment),
            "overlaps": overlaps,
            "fill_holes": bool(fill_holes),
            "cells": int(len(scores)),
            # per-image confidence: a field the model does not recognise has few confident cells
            "high_score_fraction": float(np.mean(scores >= HIGH_SCORE)) if len(scores) else 0.0,
        }
        if one_pass is not None:
            meta["diameter_one_pass"] = float(one_pass)
            meta["diameter_from_masks"] = float(implied) if implied is not None and math.isfinite(implied) else None
        if search is not None:
            meta["scale_confidence"] = float(search.confidence)
            meta["scale_unsure"] = bool(search.confidence < UNSURE or not search.found)
            meta["scale_search"] = search.to_meta()
        return labels, cell_table(labels, scores, meta)


def _train_diameter(folder: os.PathLike | None) -> float | None:
    """``diameter`` from a checkpoint folder's metrics.json; None when absent or unreadable."""
    if folder is None:
        return None
    try:
        value = json.loads((Path(folder) / "metrics.json").read_text())["diameter"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def load_model(path_or_name: str | os.PathLike | torch.nn.Module, *, device: str = "auto") -> Segmenter:
    """Load a checkpoint file or a named shipped model, ready to segment.

    Parameters
    ----------
    path_or_name : str, path-like or SegmentationModel
        A checkpoint written by ``lociseg train``, the name of a shipped
        model, or an already built model.
    device : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Returns
    -------
    Segmenter

    Raises
    ------
    ConfigError
        The file does not exist and no shipped model has that name, or the
        device is not available.
    """
    if isinstance(path_or_name, torch.nn.Module):
        return Segmenter(path_or_name, device=device)
    dev = choose_device(device)
    path = Path(path_or_name)
    if not path.exists():
        path = Path(resolve_model(str(path_or_name)))
    # a checkpoint folder, a run folder (best/, else last/) or a model.safetensors: load_checkpoint
    # resolves them and reads only model.safetensors + config.yaml (stray files such as a model.pt are ignored)
    model = load_checkpoint(path, dev)
    return Segmenter(model, device=dev, name=str(path_or_name))


def segment(
    image: np.ndarray, model: Segmenter | torch.nn.Module | str | os.PathLike, **kwargs: Any
) -> tuple[np.ndarray, CellTable]:
    """Segment one raw image: :func:`load_model` (unless given a :class:`Segmenter`) then :meth:`Segmenter.segment`.

    ``kwargs`` go to :meth:`Segmenter.segment` (``device`` to :func:`load_model`).
    """
    device = kwargs.pop("device", "auto")
    seg = model if isinstance(model, Segmenter) else load_model(model, device=device)
    return seg.segment(image, **kwargs)


#: Endings of the files :func:`write_outputs` writes per image; the sidecar (.json) comes last.
OUTPUT_SUFFIXES = (".tif", ".csv", ".json")


def write_outputs(
    out_dir: str | os.PathLike,
    name: str,
    labels: np.ndarray,
    table: CellTable,
    meta: dict | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``<name>.tif`` (labels), ``<name>.csv`` (cell table) and ``<name>.json`` (metadata) atomically.

    The JSON sidecar is written last and records the size and SHA-256 of the
    other two (key ``"outputs"``), so :func:`outputs_complete` can tell a
    finished set from one a crash, a full disk or a copy cut short.

    Parameters
    ----------
    out_dir : path-like
        Created when missing.
    name : str
        Base name of the three files.
    labels : (H, W) int ndarray
    table : CellTable
    meta : dict, optional
        Extra metadata merged over ``table.meta`` (e.g. the input path).
    overwrite : bool
        Replace existing files; otherwise an existing one is an :class:`InputError`.

    Returns
    -------
    dict
        ``{"labels": Path, "table": Path, "meta": Path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out / f"{name}.tif", "table": out / f"{name}.csv", "meta": out / f"{name}.json"}
    if not overwrite:
        for p in paths.values():  # before anything is written, so a refusal leaves no partial set
            if os.path.lexists(p):
                raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=p)
    elif paths["meta"].exists():
        paths["meta"].unlink()  # until the new sidecar is in place, the set is incomplete
    atomic_write(paths["labels"], lambda p: write_labels(p, labels), overwrite=overwrite)
    atomic_write(paths["table"], table.to_csv, overwrite=overwrite)
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in (paths["labels"], paths["table"])}
    info = {
        **table.meta,
        **(meta or {}),
        "lociseg_version": __version__,
        "columns": list(TABLE_COLUMNS),
        "outputs": files,
    }
    atomic_write(paths["meta"], json.dumps(info, indent=1, default=str) + "\n", overwrite=overwrite)
    return paths


def folder_record(path: str | os.PathLike) -> dict[str, int]:
    """What a sidecar records of an output folder (an OME-Zarr): its number of files and their total size."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return {"files": len(files), "size": sum(p.stat().st_size for p in files)}


def outputs_complete(out_dir: str | os.PathLike, name: str, endings: Sequence[str] | None = None) -> bool:
    """Whether :func:`write_outputs` finished ``name`` in ``out_dir``: the sidecar reads and every
    file it lists has the recorded size and SHA-256 (truncated, replaced or missing files fail).

    ``endings`` are the outputs the sidecar must list besides itself (default
    ``.tif`` and ``.csv``; the block path writes ``.ome.zarr`` and ``.csv``);
    a listed folder must have the recorded number of files and total size
    (:func:`folder_record`).
    """
    out = Path(out_dir)
    endings = (".tif", ".csv") if endings is None else endings
    try:
        files = json.loads((out / f"{name}.json").read_text()).get("outputs")
        if not isinstance(files, dict) or {f"{name}{e}" for e in endings} - set(files):
            return False
        for fname, rec in files.items():
            p = out / Path(fname).name
            if p.is_dir():
                if folder_record(p) != {"files": rec["files"], "size": rec["size"]}:
                    return False
            elif p.stat().st_size != rec["size"] or sha256_file(p) != rec["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True

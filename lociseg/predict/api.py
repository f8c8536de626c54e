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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import choose_device
from ..errors import ConfigError
from ..io import LazyImage
from ..models.checkpoint import load_checkpoint
from ..models.pretrained import resolve_model
from ..structures import Instances
from ..transforms import (
    RescaledImage,
    normalize_percentile,
    percentile_bounds,
    rescale_image,
    rescale_instances,
)
from .autoscale import estimate_scale, load_size_model, paste_checked, scale_factor
from .backend import check_backend, onnx_runner
from .channels import select_channels
from .outputs import OUTPUT_SUFFIXES, folder_record, outputs_complete, own_outputs, sidecar_path, write_outputs
from .paste import OVERLAP_RULES, StreamingPaste
from .scale_search import HIGH_SCORE, ScaleEstimate, search_scale, search_window
from .table import TABLE_COLUMNS, CellTable, cell_table
from .tiling import predict_tiled, tile_instances

log = logging.getLogger(__name__)

# The cell table and the output writers live in their own modules; the API re-exports them.
__all__ = [
    "OUTPUT_SUFFIXES",
    "TABLE_COLUMNS",
    "CellTable",
    "Segmenter",
    "cell_table",
    "folder_record",
    "load_model",
    "outputs_complete",
    "own_outputs",
    "segment",
    "sidecar_path",
    "write_outputs",
]

UNSURE = 0.35
"""Scale-search confidence below which :meth:`Segmenter.segment` warns that the estimate is unsure."""


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
    backend : {"torch", "onnx"}, optional
        Runtime of the network pass (:mod:`~lociseg.predict.backend`):
        PyTorch, or ONNX Runtime on the CPU (a LACSS model; needs
        ``pip install 'lociseg[onnx]'``; the graph is written on first use).

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
        backend: str = "torch",
    ):
        self.device = choose_device(device)
        check_backend(backend, model, self.device)
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
        self.size_model = load_size_model(model)  # one-pass scale (docs/scale.md); None: the ladder search
        self.backend = backend
        self._forward = onnx_runner(self.model) if backend == "onnx" else None  # kept on the model

    def __repr__(self) -> str:
        return f"Segmenter({self.name}, device={self.device}, backend={self.backend}, in_channels={self.spec.in_channels}, target_diameter={self.spec.target_diameter})"

    # ------------------------------------------------------------------ steps

    def select_channels(
        self,
        image: np.ndarray,
        channels: Sequence[int | str] | None = None,
        channel_names: Sequence[str] | None = None,
        *,
        channel_axis: int | None = 0,
    ) -> np.ndarray:
        """Return the (C, H, W) channels the model takes, in its order (:func:`.channels.select_channels`)."""
        return select_channels(self.spec, image, channels, channel_names, channel_axis=channel_axis)

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
        # only pass augment and forward when wanted: models outside lociseg may not take them
        extra = {"augment": True} if augment else {}
        if self._forward is not None:
            extra["forward"] = self._forward
        inst = self.model.predict_instances(x, **extra)
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
            it (:meth:`search_scale`, on the central
            :func:`~lociseg.predict.scale_search.search_window` of a larger
            image) and warns with the value used and how
            sure the search is (an "unsure" warning below :data:`UNSURE`);
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
        self._check_settings(tile_size, overlap, overlaps)
        explicit = diameter is not None and not isinstance(diameter, str)
        img = self.select_channels(image, channels, channel_names, channel_axis=channel_axis)
        shape = tuple(img.shape[-2:])
        bounds = self.percentiles(img)
        diameter, search = self._diameter(img, bounds, diameter)
        self._factor(diameter, shape, explicit)  # refuses a diameter the image cannot take
        opts = {
            "tile_size": tile_size,
            "overlap": overlap,
            "threshold": threshold,
            "augment": augment,
            "overlaps": overlaps,
            "fill_holes": fill_holes,
        }
        extra: dict[str, Any] = {}
        if not isinstance(img, LazyImage) and all(np.ptp(c) == 0 for c in img):
            # nothing to see in a blank image; the network would still answer its edges and padding
            labels, scores = np.zeros(shape, np.uint16), np.zeros(0, np.float32)
        else:
            labels, scores, diameter, search, extra = paste_checked(
                self, img, bounds, diameter, search, progress=progress, min_area=min_area, **opts
            )
        table = self._table(labels, scores, diameter, search, scale_factor(self.spec, diameter), shape, opts)
        table.meta.update(extra)
        return labels, table

    def _factor(self, diameter: float, shape: tuple[int, int], explicit: bool) -> float:
        """The rescale factor that brings cells of ``diameter`` px to the model's target diameter."""
        if explicit and diameter > max(shape):
            raise ConfigError(f"diameter must be at most the image size ({shape[0]} x {shape[1]} px), got {diameter:g}")
        factor = scale_factor(self.spec, diameter)
        if factor * max(shape) > 65536:
            raise ConfigError(f"diameter {diameter:g} rescales a {shape} image by {factor:.3g}: check the value")
        return factor

    def _table(
        self,
        labels: np.ndarray,
        scores: np.ndarray,
        diameter: float,
        search: ScaleEstimate | None,
        factor: float,
        shape: tuple[int, int],
        opts: dict[str, Any],
    ) -> CellTable:
        """The cell table of :meth:`segment`, its meta recording how the labels were made."""
        meta = {
            "model": self.name,
            "backend": self.backend,
            "diameter_used": float(diameter),
            "diameter_estimated": search is not None,
            "target_diameter": float(self.spec.target_diameter),
            "scale_factor": factor,
            "image_shape": list(shape),
            "tile_size": int(opts["tile_size"]),
            "overlap": int(opts["overlap"] if opts["overlap"] is not None else self.default_overlap()),
            "threshold": float(opts["threshold"]),
            "augment": bool(opts["augment"]),
            "overlaps": opts["overlaps"],
            "fill_holes": bool(opts["fill_holes"]),
            "cells": int(len(scores)),
            # per-image confidence: a field the model does not recognise has few confident cells
            "high_score_fraction": float(np.mean(scores >= HIGH_SCORE)) if len(scores) else 0.0,
        }
        if search is not None:
            meta["scale_confidence"] = float(search.confidence)
            meta["scale_unsure"] = bool(search.confidence < UNSURE or not search.found)
            meta["scale_search"] = search.to_meta()
        return cell_table(labels, scores, meta)

    def _check_settings(self, tile_size: int, overlap: int | None, overlaps: str) -> None:
        """Refuse settings :meth:`segment` cannot use, before any inference."""
        if overlaps not in OVERLAP_RULES:
            raise ConfigError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
        min_tile = (self.default_overlap() if overlap is None else overlap) + self.pad_multiple
        if tile_size < min_tile:
            raise ConfigError(
                f"tile_size must be at least {min_tile} px for this model (overlap + {self.pad_multiple}), got {tile_size}"
            )

    def _diameter(
        self, img: np.ndarray, bounds: np.ndarray, diameter: float | str | None
    ) -> tuple[float, ScaleEstimate | None]:
        """The cell diameter :meth:`segment` uses, and the scale search when it was estimated (with a warning)."""
        if isinstance(diameter, str):
            if diameter != "train":
                raise ConfigError(f"diameter must be a number of pixels or 'train', got {diameter!r}")
            if self.train_diameter is None:
                raise ConfigError(
                    f"model {self.name} records no training diameter (no metrics.json); give diameter in px"
                )
            diameter = self.train_diameter
        if diameter is not None:
            if not (diameter > 0 and math.isfinite(diameter)):
                raise ConfigError(f"diameter must be a positive number of pixels, got {diameter}")
            return diameter, None
        diameter = (search := estimate_scale(self, img, bounds)).diameter
        if search.method == "size-model":
            return diameter, search  # checked by its masks in paste_checked, which warns
        if not math.isfinite(diameter):
            # the training images' scale if known: a weak model's masks only fit cells at that scale
            diameter = float(self.train_diameter or self.spec.target_diameter)
            message = f"no cells found to estimate the diameter; using the model's {diameter:.1f} px"
        elif search.confidence < UNSURE:
            message = (
                f"cell diameter estimated at {diameter:.1f} px but unsure (confidence {search.confidence:.2f}): "
                "check the result or give the diameter (--diameter; diameter= in Python)"
            )
        else:
            message = (
                f"cell diameter estimated at {diameter:.1f} px (confidence {search.confidence:.2f}; "
                "give it with --diameter, or diameter= in Python)"
            )
        warnings.warn(message, stacklevel=3)
        return diameter, search


def _train_diameter(folder: os.PathLike | None) -> float | None:
    """``diameter`` from a checkpoint folder's metrics.json; None when absent or unreadable."""
    if folder is None:
        return None
    try:
        value = json.loads((Path(folder) / "metrics.json").read_text())["diameter"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def load_model(
    path_or_name: str | os.PathLike | torch.nn.Module, *, device: str = "auto", backend: str = "torch"
) -> Segmenter:
    """Load a checkpoint file or a named shipped model, ready to segment.

    Parameters
    ----------
    path_or_name : str, path-like or SegmentationModel
        A checkpoint written by ``lociseg train``, the name of a shipped
        model, or an already built model.
    device : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    backend : {"torch", "onnx"}, optional
        Runtime of the network pass (:class:`Segmenter`).

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
        return Segmenter(path_or_name, device=device, backend=backend)
    dev = choose_device(device)
    path = Path(path_or_name)
    if not path.exists():
        path = Path(resolve_model(str(path_or_name)))
    # a checkpoint folder, a run folder (best/, else last/) or a model.safetensors: load_checkpoint
    # resolves them and reads only model.safetensors + config.yaml (stray files such as a model.pt are ignored)
    model = load_checkpoint(path, dev)
    return Segmenter(model, device=dev, name=str(path_or_name), backend=backend)


def segment(
    image: np.ndarray, model: Segmenter | torch.nn.Module | str | os.PathLike, **kwargs: Any
) -> tuple[np.ndarray, CellTable]:
    """Segment one raw image: :func:`load_model` (unless given a :class:`Segmenter`) then :meth:`Segmenter.segment`.

    ``kwargs`` go to :meth:`Segmenter.segment` (``device`` and ``backend`` to :func:`load_model`).
    """
    device, backend = kwargs.pop("device", "auto"), kwargs.pop("backend", "torch")
    seg = model if isinstance(model, Segmenter) else load_model(model, device=device, backend=backend)
    return seg.segment(image, **kwargs)

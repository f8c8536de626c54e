"""COCO instance annotations (as used by LIVECell) to and from label images.

Segmentations may be polygons (``[[x0, y0, x1, y1, ...], ...]``) or run-length
encodings, uncompressed (``{"counts": [...], "size": [h, w]}``) or compressed
(``counts`` as the COCO string). COCO RLE runs alternate background and
object, start with background and go column-major (Fortran order).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_api

from ..errors import InputError
from .polygons import mask_outlines

PathLike = str | os.PathLike

__all__ = [
    "labels_to_coco",
    "coco_to_labels",
    "read_coco",
    "coco_rle_encode",
    "coco_rle_decode",
    "mask_to_polygons",
]


# ------------------------------------------------------------------ RLE


def _compress(counts: list[int], size: list[int]) -> str:
    """COCO's compact string of uncompressed run lengths (``pycocotools.mask.frPyObjects``)."""
    rle = mask_api.frPyObjects({"size": size, "counts": [int(c) for c in counts]}, size[0], size[1])
    return rle["counts"].decode("ascii")


def coco_rle_encode(
    mask: np.ndarray, *, compressed: bool = True, shape: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """Encode a binary (H, W) mask as COCO RLE.

    Parameters
    ----------
    mask : (h, w) ndarray
        The whole mask, or with ``shape`` the box of it that holds the object.
    compressed : bool
        Counts as the compact COCO string (``pycocotools.mask.encode``)
        instead of a list of integers.
    shape : (H, W), optional
        Shape of the whole mask when ``mask`` is a box of it at ``offset``
        (y, x): the RLE is that of the whole mask, computed in time
        proportional to the box.

    Returns
    -------
    rle : dict with ``size`` [H, W] and ``counts``.
    """
    m = np.asarray(mask) > 0
    size = [int(m.shape[0]), int(m.shape[1])]
    if shape is not None:
        size = [int(shape[0]), int(shape[1])]
        counts = _box_counts(m, (size[0], size[1]), offset)
        return {"size": size, "counts": _compress(counts, size) if compressed else counts}
    if compressed:
        return {"size": size, "counts": mask_api.encode(np.asfortranarray(m, dtype=np.uint8))["counts"].decode("ascii")}
    # pycocotools only writes the compressed form; uncompressed counts are the run lengths, background first
    flat = m.ravel(order="F")
    if not flat.size:
        return {"size": size, "counts": []}
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": size, "counts": [0, *counts] if flat[0] else counts}


def _box_counts(box: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]) -> list[int]:
    """Column-major COCO run lengths of an (H, W) mask that is zero outside ``box`` placed at ``offset``."""
    h, w = shape
    y0, x0 = int(offset[0]), int(offset[1])
    # zero rows around each column so that runs end within their column
    d = np.diff(np.pad(box.astype(np.int8), ((1, 1), (0, 0))), axis=0).T
    sc, sr = np.nonzero(d == 1)  # by column, then row: column-major order
    ec, er = np.nonzero(d == -1)
    starts = (x0 + sc) * h + y0 + sr
    ends = (x0 + ec) * h + y0 + er
    # a run down to the bottom of one column continues at the top of the next
    join = np.flatnonzero(ends[:-1] == starts[1:])
    starts, ends = np.delete(starts, join + 1), np.delete(ends, join)
    edges = np.empty(2 * len(starts) + 2, np.int64)
    edges[0], edges[1:-1:2], edges[2:-1:2], edges[-1] = 0, starts, ends, h * w
    counts = np.diff(edges).tolist()
    return counts[:-1] if len(counts) > 1 and counts[-1] == 0 else counts


def coco_rle_decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed or not) into a boolean (H, W) mask.

    Raises
    ------
    ValueError
        Counts that do not cover the image exactly, which pycocotools would
        decode into a wrong mask; a compressed string must be the one
        ``pycocotools.mask.encode`` writes for the mask it decodes to.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        string = counts.encode("ascii") if isinstance(counts, str) else counts
        try:
            mask = mask_api.decode({"size": [h, w], "counts": string})
        except ValueError as exc:  # runs past the end
            raise ValueError(f"RLE counts do not fit a {h}x{w} image ({exc})") from None
        # Runs that stop short leave the rest of the mask undefined; only a string
        # that encodes exactly this mask covers the image.
        if mask_api.encode(mask)["counts"] != string:
            raise ValueError(f"RLE counts do not cover a {h}x{w} image")
        return mask.astype(bool)
    counts = np.asarray(counts, dtype=np.int64)
    if (counts.size and counts.min() < 0) or counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {h * w}")
    compact = mask_api.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
    return mask_api.decode(compact).astype(bool)


# -------------------------------------------------------------- polygons


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 0.0) -> list[list[float]]:
    """Outer boundary polygon(s) of a binary mask, as COCO ``[x0, y0, x1, y1, ...]`` lists.

    One polygon per 4-connected piece (:func:`lociseg.io.polygons.mask_outlines`,
    its exterior), running along pixel edges with pixel centres at integer
    coordinates (corners at half-integers), so rasterising it again (pixel
    centres inside) gives back the mask; holes are not represented, as in
    COCO polygons.

    Parameters
    ----------
    mask : (H, W) ndarray
    tolerance : float
        Simplify each polygon (``skimage.measure.approximate_polygon``) by up
        to this many pixels; 0 keeps it exact.
    """
    from skimage.measure import approximate_polygon

    polys = []
    for piece in mask_outlines(mask, simple=False):
        xy = piece.exterior - 0.5  # corners of pixel squares -> pixel-centre coordinates
        if tolerance > 0:
            xy = approximate_polygon(np.concatenate([xy, xy[:1]]), tolerance)[:-1]
            if len(xy) < 3:
                continue
        polys.append(xy.ravel().tolist())
    return polys


def _rasterize_polygons(polygons: list[list[float]], shape: tuple[int, int]) -> np.ndarray:
    from skimage.draw import polygon as draw_polygon

    m = np.zeros(shape, bool)
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        rr, cc = draw_polygon(xy[:, 1], xy[:, 0], shape)
        m[rr, cc] = True
    return m


def _segmentation_mask(seg: Any, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(seg, list):
        return _rasterize_polygons(seg, shape)
    if isinstance(seg, Mapping) and "counts" in seg:
        m = coco_rle_decode(seg)
        if m.shape != tuple(shape):
            raise ValueError(f"RLE size {m.shape} differs from image size {shape}")
        return m
    raise ValueError(f"unknown segmentation format {type(seg).__name__}")


# -------------------------------------------------------------- public


def labels_to_coco(
    labels_by_name: Mapping[str, np.ndarray],
    *,
    encoding: Literal["polygon", "rle", "rle-uncompressed"] = "polygon",
    category: str = "cell",
) -> dict[str, Any]:
    """Convert label images to a COCO instance-segmentation dictionary.

    Parameters
    ----------
    labels_by_name : mapping of file name to (H, W) label image
        Image ids are assigned 1, 2, ... in this order; each object becomes
        one annotation.
    encoding : {"polygon", "rle", "rle-uncompressed"}
        Polygons (LIVECell style; holes are lost) or RLE (exact).
    category : str
        Name of the single category.

    Returns
    -------
    coco : dict with ``images``, ``annotations`` and ``categories``
        (``json.dump`` it to write a file).
    """
    from scipy import ndimage as ndi

    images, annotations = [], []
    ann_id = 1
    for image_id, (name, labels) in enumerate(labels_by_name.items(), start=1):
        labels = np.asarray(labels)
        h, w = labels.shape
        images.append({"id": image_id, "file_name": str(name), "height": int(h), "width": int(w)})
        objects = ndi.find_objects(labels.astype(np.int64))
        for k, sl in enumerate(objects, start=1):
            if sl is None:
                continue
            # the object's box only: time grows with the pixels, not objects x pixels
            local = labels[sl] == k
            ys, xs = sl
            if encoding == "polygon":
                segmentation = [
                    [v + (xs.start if i % 2 == 0 else ys.start) for i, v in enumerate(poly)]
                    for poly in mask_to_polygons(local)
                ]
            elif encoding in ("rle", "rle-uncompressed"):
                segmentation = coco_rle_encode(
                    local, compressed=encoding == "rle", shape=(h, w), offset=(ys.start, xs.start)
                )
            else:
                raise ValueError(f"unknown encoding {encoding!r}")
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": segmentation,
                    "area": int(local.sum()),
                    "bbox": [int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start)],
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": category}]}


def read_coco(path: PathLike) -> dict[str, Any]:
    """Load a COCO JSON file, checking it has ``images`` and ``annotations``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=path) from None
    if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
        raise InputError("not a COCO file (needs 'images' and 'annotations')", path=path)
    if not isinstance(coco["images"], list) or not isinstance(coco["annotations"], list):
        raise InputError("not a COCO file ('images' and 'annotations' must be lists)", path=path)
    for i, im in enumerate(coco["images"]):
        missing = [k for k in ("id", "file_name", "height", "width") if not isinstance(im, dict) or k not in im]
        if missing:
            raise InputError(
                f"COCO images[{i}] lacks {', '.join(repr(k) for k in missing)} "
                "(each image entry needs id, file_name, height and width)",
                path=path,
            )
        if not all(isinstance(im[k], int) and not isinstance(im[k], bool) and im[k] > 0 for k in ("height", "width")):
            raise InputError(
                f"COCO images[{i}]: height and width must be positive integers, got {im['height']!r} x {im['width']!r}",
                path=path,
            )
    for i, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise InputError(f"COCO annotations[{i}] lacks 'image_id'", path=path)
    return coco


def coco_to_labels(coco: Mapping[str, Any], image_id: int | str) -> np.ndarray:
    """Instance label image of one image of a COCO dictionary.

    Parameters
    ----------
    coco : dict
        COCO instance annotations (e.g. from :func:`read_coco`).
    image_id : int or str
        The image's ``id`` or its ``file_name``.

    Returns
    -------
    labels : (H, W) int32 ndarray
        Annotations in file order get labels 1..N; where annotations overlap
        (LIVECell has a few) the later one wins. Crowd annotations are skipped.
    """
    images = coco.get("images", [])
    info = next((im for im in images if im.get("id") == image_id or im.get("file_name") == image_id), None)
    if info is None:
        raise InputError(f"image {image_id!r} not in the COCO annotations")
    shape = (int(info["height"]), int(info["width"]))
    labels = np.zeros(shape, np.int32)
    k = 0
    for ann in coco.get("annotations", []):
        if ann.get("image_id") != info["id"] or ann.get("iscrowd", 0):
            continue
        try:
            mask = _segmentation_mask(ann["segmentation"], shape)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"annotation {ann.get('id')}: {exc}") from None
        if mask.any():
            k += 1
            labels[mask] = k
    return labels

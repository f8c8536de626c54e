"""Write label images in the formats other tools read.

=============  =====================================  ==========================
format         file                                   read by
=============  =====================================  ==========================
``ome-zarr``   ``<name>.ome.zarr`` (NGFF 0.4 labels)  napari-ome-zarr, QuPath,
                                                      Fiji/MoBIE, ``ome-zarr``
``geojson``    ``<name>.geojson``                     QuPath (File > Import
                                                      objects), shapely, GIS
``imagej-roi`` ``<name>.roi.zip``                     ImageJ/Fiji ROI Manager
``coco``       ``<name>.coco.json`` (or one file)     pycocotools, detectron2
``csv``        ``<name>.cells.csv``                   any spreadsheet
=============  =====================================  ==========================

Outlines are traced along pixel edges (:mod:`lociseg.io.polygons`), so
polygon areas equal pixel counts.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..io.files import atomic_write
from ..io.polygons import label_outlines

__all__ = [
    "FORMATS",
    "label_colors",
    "cell_measurements",
    "write_csv",
    "labels_to_geojson",
    "write_geojson",
    "write_imagej_rois",
    "create_ome_zarr",
    "display_window",
    "write_ome_zarr",
    "write_coco",
    "export_labels",
]

PathLike = str | os.PathLike
FORMATS = ("ome-zarr", "geojson", "imagej-roi", "coco", "csv")
SUFFIX = {
    "ome-zarr": ".ome.zarr",
    "geojson": ".geojson",
    "imagej-roi": ".roi.zip",
    "coco": ".coco.json",
    "csv": ".cells.csv",
}


def _missing(package: str, fmt: str) -> ConfigError:
    return ConfigError(f"format {fmt!r} needs the {package!r} package: pip install 'lociseg[export]'")


def label_colors(n: int, seed: int = 0) -> np.ndarray:
    """Distinct-looking RGB colours (uint8, (n, 3)) for labels 1..n, reproducible per ``seed``."""
    rng = np.random.default_rng(seed)
    # golden-ratio hue steps in random order: neighbours (similar ids) differ in colour
    hue = (np.arange(n) * 0.618033988749895) % 1.0
    rng.shuffle(hue)
    # HSV -> RGB with saturation 0.75, value 0.95
    k = (np.array([5.0, 3.0, 1.0])[None] + hue[:, None] * 6) % 6
    rgb = 0.95 * (1 - 0.75 * np.clip(np.minimum(k, 4 - k), 0, 1))
    return (rgb * 255).round().astype(np.uint8)


# ------------------------------------------------------------------- CSV


def cell_measurements(labels: np.ndarray, image: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-cell shape (and intensity) measurements, one row per label present.

    Parameters
    ----------
    labels : (H, W) int ndarray
    image : (H, W) or (C, H, W) ndarray, optional
        Adds ``mean_intensity_<c>`` per channel.

    Returns
    -------
    dict of column name -> 1-D ndarray
        ``label, centroid_y, centroid_x, area, perimeter, equivalent_diameter,
        major_axis_length, minor_axis_length, eccentricity, solidity,
        bbox_y0, bbox_x0, bbox_y1, bbox_x1`` (pixels; bbox end exclusive).
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    props = (
        "label",
        "centroid",
        "area",
        "perimeter",
        "equivalent_diameter_area",
        "axis_major_length",
        "axis_minor_length",
        "eccentricity",
        "solidity",
        "bbox",
    )
    t = regionprops_table(labels.astype(np.int64, copy=False), properties=props)
    cols = {
        "label": t["label"],
        "centroid_y": t["centroid-0"],
        "centroid_x": t["centroid-1"],
        "area": t["area"].astype(np.int64),
        "perimeter": t["perimeter"],
        "equivalent_diameter": t["equivalent_diameter_area"],
        "major_axis_length": t["axis_major_length"],
        "minor_axis_length": t["axis_minor_length"],
        "eccentricity": t["eccentricity"],
        "solidity": t["solidity"],
        "bbox_y0": t["bbox-0"],
        "bbox_x0": t["bbox-1"],
        "bbox_y1": t["bbox-2"],
        "bbox_x1": t["bbox-3"],
    }
    if image is not None:
        img = np.asarray(image, np.float64)
        img = img[None] if img.ndim == 2 else img
        if img.shape[-2:] != labels.shape:
            raise ValueError(f"image shape {img.shape} does not match labels {labels.shape}")
        flat = labels.ravel().astype(np.int64)
        n = int(flat.max()) if flat.size else 0
        counts = np.bincount(flat, minlength=n + 1)
        for c, ch in enumerate(img):
            sums = np.bincount(flat, ch.ravel(), minlength=n + 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                cols[f"mean_intensity_{c}"] = (sums / counts)[cols["label"]]
    return cols


def write_csv(path: PathLike, columns: Mapping[str, np.ndarray]) -> Path:
    """Write columns (equal-length 1-D arrays) as CSV with a header line."""
    path = Path(path)
    names = list(columns)
    data = [np.asarray(columns[k]) for k in names]
    with open(path, "w", newline="") as f:
        f.write(",".join(names) + "\n")
        for row in zip(*data):
            f.write(
                ",".join(str(int(v)) if np.issubdtype(type(v), np.integer) else f"{float(v):.6g}" for v in row) + "\n"
            )
    return path


# --------------------------------------------------------------- GeoJSON


def _ring(xy: np.ndarray) -> list[list[float]]:
    pts = xy.tolist()
    return pts + pts[:1]  # GeoJSON rings repeat the first vertex


def labels_to_geojson(
    labels: np.ndarray,
    *,
    object_type: str = "detection",
    classification: str | None = "cell",
    nuclei: np.ndarray | None = None,
    measurements: Mapping[str, np.ndarray] | None = None,
    image_name: str = "",
) -> dict[str, Any]:
    """One GeoJSON Feature per cell, in the layout QuPath imports.

    Parameters
    ----------
    labels : (H, W) int ndarray
    object_type : {"detection", "annotation", "cell"}
        QuPath object type. ``"cell"`` needs ``nuclei`` (a label image whose
        label ``k`` is cell ``k``'s nucleus), stored as the Feature's
        ``nucleusGeometry`` (beside ``geometry``, where QuPath reads it).
    classification : str or None
        QuPath class name of every object.
    nuclei : (H, W) int ndarray, optional
    measurements : mapping of column -> array, optional
        Per-cell values, with a ``label`` column; stored under
        ``properties.measurements``.
    image_name : str
        Name of the image; with the label it makes each Feature's ``id``, a
        UUID that is the same on every export and differs between images.

    Returns
    -------
    dict
        A GeoJSON ``FeatureCollection`` (``json.dump`` it).
    """
    if object_type not in ("detection", "annotation", "cell"):
        raise ConfigError(f"object_type must be detection, annotation or cell, got {object_type!r}")
    if object_type == "cell" and nuclei is None:
        raise ConfigError("QuPath cell objects need a nucleus label image (nuclei=...)")
    outlines = label_outlines(labels)
    nuc = label_outlines(nuclei) if nuclei is not None else {}
    meas: dict[int, dict[str, float]] = {}
    if measurements is not None:
        names = [k for k in measurements if k != "label"]
        for i, lab in enumerate(np.asarray(measurements["label"]).tolist()):
            meas[int(lab)] = {k: float(measurements[k][i]) for k in names}
    colors = label_colors(max(outlines, default=0))
    features = []
    for lab, pieces in outlines.items():
        props: dict[str, Any] = {"objectType": object_type, "isLocked": False, "name": f"cell {lab}", "label": int(lab)}
        if classification:
            props["classification"] = {"name": classification, "color": colors[lab - 1].tolist()}
        if lab in meas:
            props["measurements"] = meas[lab]
        feature: dict[str, Any] = {
            "type": "Feature",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lociseg:{image_name}#{lab}")),
            "geometry": _geometry(pieces),
        }
        if lab in nuc:
            feature["nucleusGeometry"] = _geometry(nuc[lab])
        feature["properties"] = props
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def _geometry(pieces) -> dict[str, Any]:
    polys = [[_ring(p.exterior)] + [_ring(h) for h in p.holes] for p in pieces]
    if len(polys) == 1:
        return {"type": "Polygon", "coordinates": polys[0]}
    return {"type": "MultiPolygon", "coordinates": polys}


def write_geojson(path: PathLike, labels: np.ndarray, **kwargs: Any) -> Path:
    """Write :func:`labels_to_geojson` to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(labels_to_geojson(labels, **kwargs)))
    return path


# ----------------------------------------------------------- ImageJ ROIs


def write_imagej_rois(path: PathLike, labels: np.ndarray) -> Path:
    """Write one traced polygon ROI per cell into an ImageJ ROI-set zip.

    ImageJ ROIs have no holes, and a cell in several pieces gives one ROI per
    piece (named ``cell-<label>``, then ``cell-<label>-<piece>``).
    """
    try:
        import roifile
    except ModuleNotFoundError:
        raise _missing("roifile", "imagej-roi") from None
    path = Path(path)
    rois = []
    for lab, pieces in label_outlines(labels, simple=False).items():
        for j, piece in enumerate(pieces):
            roi = roifile.ImagejRoi.frompoints(piece.exterior.astype(np.int32))
            # integer corners on pixel edges: ImageJ's 'traced' type fills exactly these pixels
            roi.roitype = roifile.ROI_TYPE.TRACED
            roi.name = f"cell-{lab}" if j == 0 else f"cell-{lab}-{j}"
            rois.append(roi)
    if path.exists():
        path.unlink()  # roiwrite appends to an existing zip
    if rois:
        roifile.roiwrite(path, rois)
    else:
        import zipfile

        zipfile.ZipFile(path, "w").close()
    return path


# ---------------------------------------------------------------- OME-Zarr


def _pyramid(a: np.ndarray, min_size: int) -> list[np.ndarray]:
    levels = [a]
    while min(levels[-1].shape[-2:]) // 2 >= min_size:
        levels.append(levels[-1][..., ::2, ::2])  # nearest: labels must stay labels
    return levels


def create_ome_zarr(
    path: PathLike,
    shape: tuple[int, int],
    *,
    chunks: Sequence[int],
    image_dtype: Any,
    label_dtype: Any,
    channel_names: Sequence[str],
    windows: Sequence[tuple[float, float, float, float]],
    name: str,
    label_name: str = "cells",
    pixel_size: float | None = None,
) -> Any:
    """An empty NGFF 0.4 image with one image-label: the one layout every OME-Zarr of lociseg has.

    Zarr v2 layout (what napari-ome-zarr, QuPath and ome-zarr-py read): the
    image ``0..L-1`` as (C, H, W), ``labels/<label_name>/0..L-1`` as (H, W),
    level ``i`` downsampled by ``2**i``; unwritten chunks read as 0.

    Parameters
    ----------
    path : path-like
        The ``.ome.zarr`` folder (replaced).
    shape : (H, W)
        Level 0 plane.
    chunks : sequence of int
        Chunk side of each level (their number is the number of levels).
    image_dtype, label_dtype
        Data types of the image and the labels.
    channel_names : sequence of str
        One per image channel (``omero`` labels: napari's layer names).
    windows : sequence of (start, end, min, max)
        Per channel, the display window and the data range (``omero`` ``window``).
    name : str
        The image's name in ``multiscales`` (the output's name, not a temporary folder).
    label_name : str
        Name of the label image.
    pixel_size : float, optional
        Micrometres per pixel (``scale`` transform, unit micrometer).

    Returns
    -------
    zarr.Group
        The root group, open for writing.
    """
    try:
        import zarr
    except ModuleNotFoundError:
        raise _missing("zarr", "ome-zarr") from None
    if len(windows) != len(channel_names):
        raise ValueError(f"{len(windows)} display windows for {len(channel_names)} channel(s)")
    h, w = shape
    unit = {"unit": "micrometer"} if pixel_size else {}
    px = float(pixel_size or 1.0)
    space = [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]

    def multiscales(nd: int, title: str, axes: list[dict]) -> list[dict]:
        datasets = [
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1.0] * nd + [px * 2**i] * 2}]}
            for i in range(len(chunks))
        ]
        return [{"version": "0.4", "name": title, "axes": axes, "datasets": datasets}]

    nch = len(channel_names)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    lab = root.require_group("labels").require_group(label_name)
    for i, c in enumerate(chunks):
        lh, lw = -(-h // 2**i), -(-w // 2**i)
        ch, cw = max(1, min(c, lh)), max(1, min(c, lw))
        root.create_array(str(i), shape=(nch, lh, lw), chunks=(1, ch, cw), dtype=image_dtype, fill_value=0)
        lab.create_array(str(i), shape=(lh, lw), chunks=(ch, cw), dtype=label_dtype, fill_value=0)
    root.attrs["multiscales"] = multiscales(1, str(name), [{"name": "c", "type": "channel"}, *space])
    root.attrs["omero"] = _omero(channel_names, windows)
    root["labels"].attrs["labels"] = [label_name]
    lab.attrs["multiscales"] = multiscales(0, label_name, space)
    lab.attrs["image-label"] = {"version": "0.4", "source": {"image": "../../"}}
    return root


def write_ome_zarr(
    path: PathLike,
    labels: np.ndarray,
    *,
    image: np.ndarray | None = None,
    name: str = "cells",
    image_name: str | None = None,
    channel_names: Sequence[str] | None = None,
    pixel_size: float | None = None,
    min_level_size: int = 256,
    chunks: int = 1024,
) -> Path:
    """Write an OME-Zarr (NGFF 0.4) image with ``labels/<name>`` as an image-label.

    Parameters
    ----------
    path : path-like
        The ``.ome.zarr`` folder (replaced when it exists as a zarr group).
    labels : (H, W) int ndarray
    image : (H, W) or (C, H, W) ndarray, optional
        The intensity image; when absent an all-zero single-channel uint8
        image of the labels' shape is stored, since NGFF labels live inside an
        image.
    name : str
        Name of the label image.
    image_name : str, optional
        Name of the image in ``multiscales`` (default: ``path``'s name without ``.ome.zarr``).
    channel_names : sequence of str, optional
        One per image channel, stored as ``omero`` channel labels (what
        napari and QuPath show as layer/channel names); default
        ``channel 0``, ``channel 1``, ... (``no image`` for the placeholder).
    pixel_size : float, optional
        Micrometres per pixel (``scale`` transform, unit micrometer).
    min_level_size : int
        Downsample by 2 (nearest) while the smaller side stays >= this.
    chunks : int
        Chunk side in pixels.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    placeholder = image is None
    if placeholder:
        image = np.zeros((1, *labels.shape), np.uint8)
    image = np.asarray(image)
    image = image[None] if image.ndim == 2 else image
    if image.shape[-2:] != labels.shape:
        raise ValueError(f"image shape {image.shape} does not match labels {labels.shape}")
    if channel_names is None:
        channel_names = ["no image"] if placeholder else [f"channel {c}" for c in range(image.shape[0])]
    channel_names = [str(c) for c in channel_names]
    if len(channel_names) != image.shape[0]:
        raise ValueError(f"{len(channel_names)} channel names for {image.shape[0]} image channel(s)")
    path = Path(path)
    levels = _pyramid(labels, min_level_size)
    root = create_ome_zarr(
        path,
        labels.shape,
        chunks=[chunks] * len(levels),
        image_dtype=image.dtype,
        label_dtype=labels.dtype,
        channel_names=channel_names,
        windows=[display_window(c) for c in image],
        name=image_name or path.name.removesuffix(".ome.zarr"),
        label_name=name,
        pixel_size=pixel_size,
    )
    g = root["labels"][name]
    for i, lev in enumerate(levels):
        g[str(i)][...] = lev
        root[str(i)][...] = image[..., :: 2**i, :: 2**i]
    n = int(labels.max()) if labels.size else 0
    colors = label_colors(n)
    g.attrs["image-label"] = {
        **g.attrs["image-label"],
        "colors": [{"label-value": k, "rgba": [*colors[k - 1].tolist(), 255]} for k in range(1, min(n, 65535) + 1)],
    }
    return path


def display_window(channel: np.ndarray) -> tuple[float, float, float, float]:
    """``(start, end, min, max)`` of one channel: its 0.5 and 99.5 percentiles and its range."""
    ch = np.asarray(channel)
    if not ch.size:
        return 0.0, 1.0, 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(ch, (0.5, 99.5)))
    return lo, max(hi, lo + 1e-6), float(ch.min()), float(ch.max())


def _omero(names: Sequence[str], windows: Sequence[tuple[float, float, float, float]]) -> dict[str, Any]:
    """NGFF ``omero`` block: channel labels, display colours and contrast windows (napari needs all three)."""
    # single channel grey; else the usual fluorescence order green, blue, red, then the rest
    palette = ["FFFFFF"] if len(names) == 1 else ["00FF00", "0000FF", "FF0000", "FF00FF", "00FFFF", "FFFF00"]
    channels = [
        {
            "label": str(label),
            "color": palette[c % len(palette)],
            "active": True,
            "window": {"start": float(lo), "end": float(max(hi, lo + 1e-6)), "min": float(dmin), "max": float(dmax)},
        }
        for c, (label, (lo, hi, dmin, dmax)) in enumerate(zip(names, windows))
    ]
    return {"version": "0.4", "channels": channels, "rdefs": {"model": "color" if len(names) > 1 else "greyscale"}}


# -------------------------------------------------------------------- COCO


def write_coco(
    path: PathLike,
    labels_by_name: Mapping[str, np.ndarray],
    *,
    encoding: str = "rle",
    category: str = "cell",
    overwrite: bool = True,
) -> Path:
    """Write label images as one COCO instance-segmentation JSON (RLE by default: exact, keeps holes).

    Written atomically; with ``overwrite=False`` an existing file is an :class:`~lociseg.errors.InputError`.
    """
    from ..io import labels_to_coco

    text = json.dumps(labels_to_coco(labels_by_name, encoding=encoding, category=category))
    return atomic_write(path, text, overwrite=overwrite)


# ------------------------------------------------------------------ facade


def export_labels(
    labels: np.ndarray,
    out_dir: PathLike,
    name: str,
    fmt: str,
    *,
    image: np.ndarray | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Write one label image as ``out_dir/<name><suffix>`` in format ``fmt`` (one of :data:`FORMATS`).

    ``kwargs`` go to the format's writer; ``image`` is used by ``ome-zarr``
    (stored) and ``csv`` (mean intensities). The file is written atomically;
    an existing one is replaced only with ``overwrite`` (else
    :class:`~lociseg.errors.InputError`).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}{SUFFIX[fmt]}"
    if fmt == "coco":
        return write_coco(path, {name: labels}, overwrite=overwrite, **kwargs)
    if fmt == "ome-zarr":
        kwargs.setdefault("image_name", name)
        write = lambda tmp: write_ome_zarr(tmp, labels, image=image, **kwargs)  # noqa: E731
    elif fmt == "geojson":
        kwargs.setdefault("image_name", name)
        write = lambda tmp: write_geojson(tmp, labels, measurements=cell_measurements(labels), **kwargs)  # noqa: E731
    elif fmt == "imagej-roi":
        write = lambda tmp: write_imagej_rois(tmp, labels)  # noqa: E731
    else:
        write = lambda tmp: write_csv(tmp, cell_measurements(labels, image))  # noqa: E731
    # through a temporary file (folder for OME-Zarr): a failed export never leaves half a file
    return atomic_write(path, write, overwrite=overwrite)

"""Segment many images: in this process or on a Dask cluster, one task per image, large images in blocks.

:func:`segment_folder` is the library behind ``lociseg segment``: the inputs
(files, folders, glob patterns, data set specs) become jobs
(:func:`image_jobs`), each segmented and written by :func:`segment_file`
with one failure per input never stopping the others
(:func:`lociseg.batch.run_batch`). With a cluster every task a worker runs
is a function of this package's library, never of the CLI.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import OutputLock, prepare_out_dir, remove_dead_temp_files, run_batch, unique_names
from ..data import load_dataset
from ..data.load import parse_spec
from ..errors import ConfigError, InputError, LociError, ResultWarning
from ..io import LazyImage, read_image, read_image_metadata
from ..io.files import expand_inputs, image_stem
from ..models.pretrained import pick_default_model
from ..predict import api  # api.load_model looked up at call time (tests stand in a model there)
from ..predict.outputs import OUTPUT_SUFFIXES, outputs_complete, sidecar_path, write_outputs
from ..predict.paste import OVERLAP_RULES
from .blocks import segment_blocks
from .cluster import cached_segmenter, connect, release_memory

log = logging.getLogger(__name__)

#: One input: output name, source (a path or ``spec:item``), and a reader giving (image, channel names or None).
ImageJob = tuple[str, str, Callable[[], tuple[Any, list[str] | None]]]


@dataclass
class FolderRun:
    """What :func:`segment_folder` did, per input source.

    Attributes
    ----------
    results : dict
        Source -> ``"done"`` or ``"skipped"`` for the inputs that went through.
    failures : dict
        Source -> one-line reason for those that did not.
    """

    results: dict[str, object] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(r == "skipped" for r in self.results.values())

    @property
    def done(self) -> int:
        return len(self.results) - self.skipped


def check_segment_options(tile_size: int, max_image_pixels: int | None, overlaps: str) -> None:
    """Refuse a tile side the network cannot take, an image size limit under 1 or an unknown overlap rule.

    Raises
    ------
    ConfigError
        Naming the ``lociseg segment`` option at fault.
    """
    if tile_size < 256 or tile_size % 32:
        raise ConfigError(f"--tile-size must be a multiple of 32, at least 256, got {tile_size}")
    if max_image_pixels is not None and max_image_pixels < 1:
        raise ConfigError(f"--max-image-pixels must be at least 1, got {max_image_pixels}")
    if overlaps not in OVERLAP_RULES:
        raise ConfigError(f"--overlaps must be one of {', '.join(OVERLAP_RULES)}, got {overlaps!r}")


def segment_folder(
    inputs: Sequence[str | os.PathLike],
    model: str | None,
    out: str | os.PathLike,
    cluster: str | None = None,
    *,
    device: str = "auto",
    backend: str = "torch",
    diameter: float | str | None = None,
    channels: Sequence[int | str] | None = None,
    tile_size: int = 1024,
    augment: bool = False,
    overlaps: str = "score",
    max_image_pixels: int | None = 2**30,
    block_size: int = 4096,
    skip_existing: bool = False,
    overwrite: bool = False,
    debug: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> FolderRun:
    """Segment every image of ``inputs`` into ``out``: ``<name>.tif``, ``<name>.csv``, ``<name>.lociseg.json`` each.

    One input's failure never stops the others (it is reported in
    :attr:`FolderRun.failures`, its traceback in ``out/lociseg-errors.log``);
    a :class:`~lociseg.errors.ConfigError` (a bad option, :func:`check_segment_options`) stops the run. The
    output folder is locked while the run writes there.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Image files, folders (their image files), glob patterns, or data set
        specs (``bbbc018@test``).
    model : str or None
        Checkpoint, run folder or shipped model name; None picks the shipped
        model for each image's channel count.
    out : path-like
        Output folder (created).
    cluster : str, optional
        Run on Dask (:func:`~lociseg.scale_out.connect`: ``"local"``,
        ``"local:N"`` or a scheduler address); images with a side over
        ``block_size`` are then segmented in blocks into ``<name>.ome.zarr``
        (:func:`~lociseg.scale_out.segment_blocks`).
    device, backend : str
        As in :func:`~lociseg.predict.load_model` (``backend`` "torch" only with ``cluster``).
    diameter, channels, tile_size, augment, overlaps
        As in :meth:`~lociseg.predict.Segmenter.segment`.
    max_image_pixels : int or None
        Largest image plane read (:func:`~lociseg.io.read_image`'s ``max_pixels``).
    block_size : int
        With ``cluster``: the side above which an image is done in blocks.
    skip_existing, overwrite : bool
        Skip inputs whose outputs are complete (:func:`~lociseg.predict.outputs.outputs_complete`),
        or replace existing outputs; without either, existing outputs are a failure of that input.
    debug : bool
        Tracebacks of failures on stderr instead of the error log.
    on_note : callable, optional
        Receives each note on the inputs (renamed outputs); default: logged as a warning.

    Returns
    -------
    FolderRun
    """
    _check_options(tile_size, max_image_pixels, overlaps, skip_existing, overwrite, cluster, backend)
    out = Path(out)
    jobs = image_jobs([os.fspath(i) for i in inputs], max_image_pixels)
    prepare_out_dir(out)
    chans = list(channels) if channels is not None else None
    loaded: dict[str, object] = {}
    if model is not None:
        loaded[model] = api.load_model(model, device=device, backend=backend)  # a bad model fails before any image
        if diameter == "train" and loaded[model].train_diameter is None:
            raise ConfigError(f"--diameter train: model {model} records no training diameter; give the diameter in px")

    def segmenter_for(image: Any) -> object:
        name = model_for(model, chans, image)
        if name not in loaded:
            loaded[name] = api.load_model(name, device=device, backend=backend)
        return loaded[name]

    names, notes = unique_names([j[0] for j in jobs], [j[1] for j in jobs])
    for note in notes:
        (on_note or log.warning)(note)
    opts = dict(
        out=out,
        skip_existing=skip_existing,
        overwrite=overwrite,
        diameter=diameter,
        channels=chans,
        tile_size=tile_size,
        augment=augment,
        overlaps=overlaps,
    )
    items = [(path, (name, path, read)) for name, (_, path, read) in zip(names, jobs)]
    with OutputLock(out, "lociseg segment"):
        if cluster is None:
            task = functools.partial(segment_file, get_segmenter=segmenter_for, **opts)
            results, failures = run_batch(items, task, out=out, progress="segment", debug=debug)
        else:
            results, failures = _run_on_cluster(cluster, items, opts, model, device, block_size, debug)
    return FolderRun(results, failures)


def _check_options(
    tile_size: int,
    max_image_pixels: int | None,
    overlaps: str,
    skip_existing: bool,
    overwrite: bool,
    cluster: str | None,
    backend: str,
) -> None:
    """Refuse options of :func:`segment_folder` it cannot use (:func:`check_segment_options`) or that exclude each other."""
    check_segment_options(tile_size, max_image_pixels, overlaps)
    if skip_existing and overwrite:
        raise ConfigError("--skip-existing and --overwrite exclude each other")
    if cluster is not None and backend != "torch":
        raise ConfigError(f"--backend {backend} runs without --cluster only (the workers run PyTorch)")


def model_for(model: str | None, chans: list | None, image: Any) -> str:
    """``--model``, or the shipped default for the image's channel count (after ``--channels``)."""
    return model or pick_default_model(1 if image.ndim == 2 else (len(chans) if chans else image.shape[0]))


def segment_file(
    job: tuple[str, str, Callable],
    *,
    get_segmenter: Callable[[Any], Any],
    out: Path,
    skip_existing: bool,
    overwrite: bool,
    diameter: float | str | None,
    channels: list | None,
    tile_size: int,
    augment: bool,
    overlaps: str,
    claim: str | None = None,
) -> str:
    """Segment one image and write its outputs; ``"done"`` or ``"skipped"``. The task of one input.

    ``claim`` (on a cluster: the run's id) marks the outputs being written
    with ``.<name>.<claim>.tmp.claim`` until the sidecar is in place, so an
    attempt re-run after its worker died may replace what the dead attempt
    half wrote, and nothing else; the sidecar records it (``"run"``), so an
    attempt re-run after the dead one finished writing is done already.
    """
    name, path, read = job
    mark = out / f".{name}.{claim}.tmp.claim" if claim else None
    mine = mark is not None and mark.exists()  # this run's earlier attempt died while writing
    if (skip_existing or claim) and outputs_complete(out, name):
        if mark is not None:
            mark.unlink(missing_ok=True)
        if claim and (mine or _sidecar_run(out, name) == claim):
            return "done"  # written by this run's earlier attempt, whose worker died before it reported
        if skip_existing:
            return "skipped"
    if not overwrite and not mine:
        for t in (out / f"{name}{s}" for s in OUTPUT_SUFFIXES):
            if os.path.lexists(t):
                why = "incomplete or changed outputs of an earlier run" if skip_existing else "outputs exist"
                raise InputError(
                    f"{why} ({t.name}); use --overwrite to replace them"
                    + ("" if skip_existing else " or --skip-existing")
                )
    image, meta = read()
    seg = get_segmenter(image)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels, table = seg.segment(
            image,
            diameter=diameter,
            channels=channels,
            channel_names=meta,
            tile_size=tile_size,
            augment=augment,
            overlaps=overlaps,
        )
    m = table.meta
    for w in caught:
        # an unsure scale estimate is worth the user's attention
        # an unsure scale estimate or a result known to be incomplete is worth the user's attention
        loud = m.get("scale_unsure") or issubclass(w.category, ResultWarning)
        (log.warning if loud else log.info)("%s: %s", name, w.message)
    log.info(
        "%s: diameter %.1f px (%s), %d cells, %.0f%% with a high score",
        name,
        m["diameter_used"],
        f"estimated, confidence {m['scale_confidence']:.2f}" if "scale_confidence" in m else "given",
        m["cells"],
        100 * m["high_score_fraction"],
    )
    if mark is not None:
        mark.touch()
    extra = {"input": path, **({"run": claim} if claim else {})}
    write_outputs(out, name, labels, table, extra, overwrite=overwrite or mine)
    if mark is not None:
        mark.unlink(missing_ok=True)
        del image, labels, table
        release_memory()
    return "done"


def _sidecar_run(out: Path, name: str) -> str | None:
    """The ``run`` recorded in the sidecar of ``name`` (a cluster run's id), or None."""
    try:
        return json.loads(sidecar_path(out, name).read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        return None


def _worker_segmenter(model: str | None, channels: list | None, device: str, image: Any) -> Any:
    """On a dask worker: the model for ``image``, loaded once per worker."""
    return cached_segmenter(model_for(model, channels, image), device)


def _plane(path: str) -> tuple[int, int] | None:
    """(H, W) of an image file from its header, or None (data set items, unreadable files)."""
    try:
        meta = read_image_metadata(path)
    except (LociError, OSError):
        return None
    shape, axes = meta.get("shape"), meta.get("axes", "")
    if not shape or "Y" not in axes or "X" not in axes:
        return None
    return int(shape[axes.index("Y")]), int(shape[axes.index("X")])


def split_by_size(items: list, block_size: int) -> tuple[list, list]:
    """``(small, large)``: images with a side of at least ``block_size`` go in blocks to ``<name>.ome.zarr``.

    Each large one is logged, so the output format is never a surprise.
    """
    small, large = [], []
    for key, job in items:
        plane = _plane(job[1]) if Path(job[1]).exists() else None
        if plane is not None and max(plane) >= block_size:
            log.info(
                "%s: %d x %d px, at least --block-size %d: in blocks, written as OME-Zarr", job[0], *plane, block_size
            )
            large.append((key, job))
        else:
            small.append((key, job))
    return small, large


def _returning_errors(task: Callable[[Any], Any], job: Any) -> Any:
    """``task(job)`` on a worker, an exception returned instead of raised (see :func:`_raise_returned`).

    A task that raises makes dask's worker log the traceback; a bad input is
    reported here once, in one line, as without a cluster.
    """
    import traceback

    try:
        return task(job)
    except Exception as exc:  # noqa: BLE001 - handed back to run_batch, which reports it
        if not isinstance(exc, LociError | OSError):
            exc.add_note("on the worker:\n" + "".join(traceback.format_exception(exc)))
        return exc


def _raise_returned(result: Any) -> Any:
    """A worker's result, or its exception raised here."""
    if isinstance(result, Exception):
        raise result
    return result


def _run_on_cluster(
    spec: str, items: list, opts: dict, model: str | None, device: str, block_size: int, debug: bool
) -> tuple[dict[str, object], dict[str, str]]:
    """:func:`segment_folder` on a Dask cluster: one task per image; images of at least ``block_size`` in blocks.

    Tasks are submitted at once and collected in order through
    :func:`run_batch`, so a failed image is one line at the end, as without
    a cluster. Large images are done one after the other, each by all workers.
    """
    out: Path = opts["out"]
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    small, large = split_by_size(items, block_size)

    def block_job(job: tuple[str, str, Callable]) -> str:
        name, path, _ = job
        if opts["skip_existing"] and outputs_complete(out, name, endings=(".ome.zarr", ".csv")):
            return "skipped"
        image = read_image(path, lazy_above=0)  # TIFFs stay on disk; other formats are read whole here
        if not isinstance(image, LazyImage):
            log.info("%s: not a TIFF, read whole before cutting it into blocks", name)
        meta = _meta_of(Path(path))
        segment_blocks(
            client,
            image,
            out,
            name,
            model=model or model_for(None, opts["channels"], image),
            device=device,
            diameter=opts["diameter"],
            channels=opts["channels"],
            channel_names=meta if meta is None or len(meta) == image.shape[0] else None,
            block_size=block_size,
            tile_size=opts["tile_size"],
            augment=opts["augment"],
            overlaps=opts["overlaps"],
            overwrite=opts["overwrite"],
            meta={"input": path},
        )
        return "done"

    with connect(spec) as client:
        task = functools.partial(
            segment_file,
            get_segmenter=functools.partial(_worker_segmenter, model, opts["channels"], device),
            claim=run_id,
            **opts,
        )
        futures = [
            (key, client.submit(_returning_errors, task, job, key=f"segment-{run_id}-{i}"))
            for i, (key, job) in enumerate(small)
        ]
        results, failures = run_batch(
            futures, lambda fut: _raise_returned(fut.result()), out=out, progress="segment", debug=debug
        )
        more, failed = run_batch(large, block_job, out=out, progress="large images", debug=debug)
    remove_dead_temp_files(out)  # what workers killed in the middle of a write left
    return {**results, **more}, {**failures, **failed}


#: Planes larger than this (4096^2) are read window by window (tifffile's zarr store) instead of whole.
LAZY_PIXELS = 4096 * 4096


def image_jobs(
    items: list[str], max_pixels: int | None = 2**30
) -> list[tuple[str, str, Callable[[], tuple[Any, list[str] | None]]]]:
    """(output name, source, reader) per image: files/folders/globs, or data set specs
    (for images stored as one file per channel, e.g. the CellProfiler examples).

    The readers are plain functions (partials), so a job can be sent to a Dask worker.
    """
    jobs: list = []
    paths: list[str] = []
    for item in items:
        base = parse_spec(item)[0]
        if not Path(item).exists() and not any(ch in item for ch in "*?[") and "/" not in base and "." not in base:
            ds = load_dataset(item)
            for i in range(len(ds)):
                jobs.append((ds.names[i], f"{item}:{ds.names[i]}", _dataset_reader(ds, i)))
        else:
            paths.append(item)
    for path in expand_inputs(paths) if paths else []:
        jobs.append((image_stem(path, suffixes=()), str(path), functools.partial(_read_file, path, max_pixels)))
    return jobs


def _read_file(path: Path, max_pixels: int | None) -> tuple[Any, list[str] | None]:
    """An image file and its stored channel names (None when they do not count its channels)."""
    meta = _meta_of(path)
    # large TIFFs stay on disk and are read tile by tile
    image = read_image(path, max_pixels=max_pixels, lazy_above=LAZY_PIXELS)
    return image, meta if meta is None or len(meta) == image.shape[0] else None


def _dataset_reader(ds: Any, i: int) -> Callable[[], tuple[Any, list[str] | None]]:
    """A reader of data set item ``i``: its image and channel names."""
    return functools.partial(_read_item, ds, i)


def _read_item(ds: Any, i: int) -> tuple[Any, list[str] | None]:
    sample = ds[i]
    names = sample.meta.get("channel_names")
    return sample.image, list(names) if names else None


def _meta_of(path: Path) -> list[str] | None:
    """Channel names stored in the file (OME/ImageJ), if any, so --channels can name them."""
    try:
        names = read_image_metadata(path).get("channel_names")
    except LociError:
        return None  # read_image reports the problem
    return list(names) if names else None

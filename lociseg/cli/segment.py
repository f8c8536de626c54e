"""``lociseg segment``: label every cell of many images with a trained model."""

from __future__ import annotations

import functools
import glob
import logging
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ._common import OutputLock, exit_if_failed, prepare_out_dir, run_batch, unique_names

log = logging.getLogger(__name__)


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their image files, not recursive) and glob patterns, in order, without repeats."""
    from ..errors import InputError
    from ..io.image import image_suffix_ok, is_ngff

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if is_ngff(p):
            found = [p]  # an OME-Zarr image is a folder
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q.is_file() and image_suffix_ok(q)) or is_ngff(q))
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).is_file())
        else:
            found = [p]  # a missing file is reported per file later
        if not found:
            raise InputError("no image files found", path=item)
        out.extend(found)
    seen: set[str] = set()
    # realpath, unlike Path.resolve, does not raise on a symbolic link loop (read_image reports it)
    return [p for p in out if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]


def _parse_channels(text: str | None) -> list | None:
    if text is None:
        return None
    items = [c.strip() for c in text.split(",") if c.strip()]
    return [int(c) if c.lstrip("-").isdigit() else c for c in items]


def _parse_diameter(text: str | None) -> float | str | None:
    """``--diameter``: a positive number of pixels, ``train`` or nothing."""
    from ..errors import ConfigError

    if text is None or text == "train":
        return text
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--diameter must be a number of pixels or 'train', got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"--diameter must be a positive number of pixels (at most the image size), got {text}")
    return value


def main(
    images: list[str] = typer.Argument(
        ...,
        help="Image files, folders, glob patterns (quote globs), or data set specs (cellprofiler-human, bbbc018@test).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Checkpoint file, run folder or shipped model name "
        "(default: the shipped 'nuclei' for 1-channel, 'cells' for 2-channel images).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for <name>.tif, <name>.csv, <name>.json."),
    diameter: str | None = typer.Option(
        None,
        "--diameter",
        "-d",
        help="Cell diameter in pixels, or 'train' for the diameter of "
        "the model's training images (default: estimated per image).",
    ),
    channels: str | None = typer.Option(
        None, "--channels", "-c", help="Channels to use, by name or index: actin,DNA or 0,1."
    ),
    tile_size: int = typer.Option(1024, "--tile-size", help="Tile side (px at model scale) for large images."),
    augment: bool = typer.Option(
        False,
        "--augment",
        help="Average the predictions of the four flips of each tile (test-time augmentation, about 4x the time).",
    ),
    overlaps: str = typer.Option(
        "score",
        "--overlaps",
        help="Who gets a pixel that two cells' masks claim: "
        "'score' (the higher-scoring cell) or 'probability' (the more confident mask: "
        "better borders between touching cells).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    max_image_pixels: int = typer.Option(
        2**30,
        "--max-image-pixels",
        help="Refuse images whose declared plane has more "
        "pixels than this (checked before decoding; raise it for larger images).",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Run on Dask: 'local' or 'local:N' (N worker processes here) or a scheduler address "
        "(tcp://host:8786, e.g. from dask-jobqueue). Needs pip install 'lociseg\\[dask]'.",
    ),
    block_size: int = typer.Option(
        4096,
        "--block-size",
        help="With --cluster: images at least this large (px, either side) are segmented in blocks "
        "of this side on the workers and written as <name>.ome.zarr (labels) instead of <name>.tif.",
    ),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Skip images whose outputs an earlier run wrote completely (checked against the sizes and checksums in <name>.json).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> int:
    """Segment every cell in images: writes a label TIFF, a per-cell CSV and a JSON sidecar per image.

    Examples: lociseg segment image.tif -o seg/ (shipped model chosen by channel count);
    lociseg segment plate1/ --model runs/cells --out seg/ --channels actin,DNA ;
    lociseg segment "data/*.tif" -m nuclei -o seg/ --diameter 30
    """
    from ..errors import ConfigError
    from ..predict.api import load_model
    from ..predict.paste import OVERLAP_RULES

    if skip_existing and overwrite:
        raise ConfigError("--skip-existing and --overwrite exclude each other")
    diameter_px = _parse_diameter(diameter)
    if tile_size < 256 or tile_size % 32:
        raise ConfigError(f"--tile-size must be a multiple of 32, at least 256, got {tile_size}")
    if max_image_pixels < 1:
        raise ConfigError(f"--max-image-pixels must be at least 1, got {max_image_pixels}")
    if overlaps not in OVERLAP_RULES:
        raise ConfigError(f"--overlaps must be one of {', '.join(OVERLAP_RULES)}, got {overlaps!r}")
    jobs = _jobs(images, max_image_pixels)
    prepare_out_dir(out)
    chans = _parse_channels(channels)
    loaded: dict[str, object] = {}

    if model is not None:
        loaded[model] = load_model(model, device=device)  # a bad --model fails before any image is read
        if diameter_px == "train" and loaded[model].train_diameter is None:
            raise ConfigError(f"--diameter train: model {model} records no training diameter; give the diameter in px")

    def segmenter_for(image) -> object:
        name = _model_for(model, chans, image)
        if name not in loaded:
            loaded[name] = load_model(name, device=device)
        return loaded[name]

    names, notes = unique_names([j[0] for j in jobs], [j[1] for j in jobs])
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    opts = dict(
        out=out,
        skip_existing=skip_existing,
        overwrite=overwrite,
        diameter=diameter_px,
        channels=chans,
        tile_size=tile_size,
        augment=augment,
        overlaps=overlaps,
    )
    items = [(path, (name, path, read)) for name, (_, path, read) in zip(names, jobs)]
    with OutputLock(out, "lociseg segment"):
        if cluster is None:
            results, failures = run_batch(
                items, functools.partial(segment_file, get_segmenter=segmenter_for, **opts), out=out, progress="segment"
            )
        else:
            results, failures = _run_on_cluster(cluster, items, opts, model, device, block_size)
    skipped = sum(r == "skipped" for r in results.values())
    done = len(results) - skipped
    typer.echo(f"{done} image(s) segmented, {skipped} skipped, {len(failures)} failed; outputs in {out}")
    exit_if_failed(failures)
    return 0


def _model_for(model: str | None, chans: list | None, image: Any) -> str:
    """``--model``, or the shipped default for the image's channel count (after ``--channels``)."""
    from ..models.pretrained import pick_default_model

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
    from ..errors import InputError, ResultWarning
    from ..predict.api import OUTPUT_SUFFIXES, outputs_complete, write_outputs

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
        from ..scale_out.cluster import release_memory

        mark.unlink(missing_ok=True)
        del image, labels, table
        release_memory()
    return "done"


def _sidecar_run(out: Path, name: str) -> str | None:
    """The ``run`` recorded in ``<name>.json`` (a cluster run's id), or None."""
    import json

    try:
        return json.loads((out / f"{name}.json").read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        return None


def _worker_segmenter(model: str | None, channels: list | None, device: str, image: Any) -> Any:
    """On a dask worker: the model for ``image``, loaded once per worker."""
    from ..scale_out import cached_segmenter

    return cached_segmenter(_model_for(model, channels, image), device)


def _plane(path: str) -> tuple[int, int] | None:
    """(H, W) of an image file from its header, or None (data set items, unreadable files)."""
    from ..errors import LociError
    from ..io import read_image_metadata

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

    from ..errors import LociError

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
    spec: str, items: list, opts: dict, model: str | None, device: str, block_size: int
) -> tuple[dict[str, object], dict[str, str]]:
    """``lociseg segment --cluster``: one task per image; images larger than ``block_size`` in blocks.

    Tasks are submitted at once and collected in order through
    :func:`run_batch`, so a failed image is one line at the end, as without
    a cluster. Large images are done one after the other, each by all workers.
    """
    import uuid

    from ..predict.api import outputs_complete
    from ..scale_out import connect, segment_blocks
    from ._common import _remove_dead_temp_files

    out: Path = opts["out"]
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    small, large = split_by_size(items, block_size)

    def block_job(job: tuple[str, str, Callable]) -> str:
        from ..io import read_image
        from ..io.image import LazyImage

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
            model=model or _model_for(None, opts["channels"], image),
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
        results, failures = run_batch(futures, lambda fut: _raise_returned(fut.result()), out=out, progress="segment")
        more, failed = run_batch(large, block_job, out=out, progress="large images")
    _remove_dead_temp_files(out)  # what workers killed in the middle of a write left
    return {**results, **more}, {**failures, **failed}


#: Planes larger than this (4096^2) are read window by window (tifffile's zarr store) instead of whole.
LAZY_PIXELS = 4096 * 4096


def _jobs(
    items: list[str], max_pixels: int | None = 2**30
) -> list[tuple[str, str, Callable[[], tuple[Any, list[str] | None]]]]:
    """(output name, source, reader) per image: files/folders/globs, or data set specs
    (for images stored as one file per channel, e.g. the CellProfiler examples).
    """
    from ..data import load_dataset
    from ..data.load import parse_spec
    from ..io import read_image
    from ..io.files import image_stem

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

        def read(path: Path = path) -> tuple[Any, list[str] | None]:
            meta = _meta_of(path)
            # large TIFFs stay on disk and are read tile by tile
            image = read_image(path, max_pixels=max_pixels, lazy_above=LAZY_PIXELS)
            return image, meta if meta is None or len(meta) == image.shape[0] else None

        jobs.append((image_stem(path, suffixes=()), str(path), read))
    return jobs


def _dataset_reader(ds: Any, i: int) -> Callable[[], tuple[Any, list[str] | None]]:
    def read() -> tuple[Any, list[str] | None]:
        sample = ds[i]
        names = sample.meta.get("channel_names")
        return sample.image, list(names) if names else None

    return read


def _meta_of(path: Path) -> list[str] | None:
    """Channel names stored in the file (OME/ImageJ), if any, so --channels can name them."""
    from ..errors import LociError
    from ..io import read_image_metadata

    try:
        names = read_image_metadata(path).get("channel_names")
    except LociError:
        return None  # read_image reports the problem
    return list(names) if names else None

"""``lociseg info``: summarise a data set, a folder or one image file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def _fmt_stats(stats: dict | None, unit: str = "") -> str:
    if not stats:
        return "-"
    return f"{stats['min']:.0f} / {stats['median']:.0f} / {stats['max']:.0f}{unit} (min / median / max)"


def format_summary(summary: dict[str, Any]) -> str:
    """Readable table of a :func:`lociseg.data.dataset_summary` result."""
    objects = summary.get("objects")
    rows = [
        ("data set", summary["name"]),
        ("images", f"{summary['images']} ({summary['labelled']} labelled)"),
        ("channels", ", ".join(summary["channels"]) or "-"),
        ("dtype", ", ".join(f"{k} ({v})" for k, v in summary["dtypes"].items()) or "-"),
        (
            "shapes (C x H x W)",
            ", ".join(f"{k} ({v})" for k, v in list(summary["shapes"].items())[:6])
            + (" ..." if len(summary["shapes"]) > 6 else ""),
        ),
        (
            "objects",
            "-"
            if not objects
            else f"{objects['total']} total; per image {objects['per_image_min']} / {objects['per_image_median']:.0f} / "
            f"{objects['per_image_max']} (min / median / max)",
        ),
        ("object area", _fmt_stats(summary.get("area"), " px")),
        ("equiv. diameter", _fmt_stats(summary.get("diameter"), " px")),
    ]
    if summary.get("constant_images"):
        names = summary["constant_images"]
        rows.append(
            ("blank channels", f"{len(names)} image(s): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
        )
    if summary.get("points") is not None:
        rows.append(("points", str(summary["points"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _image_info(path: Path) -> tuple[str, dict[str, Any]]:
    """A readable table of one image file and the same facts as a JSON-ready dict."""
    from ..io import read_image, read_image_metadata

    meta = read_image_metadata(path)
    image = read_image(path)
    ranges = [(c.min().item(), c.max().item()) for c in image]
    rows = [
        ("file", str(path)),
        ("format", meta.get("format", "?")),
        ("stored shape", f"{meta['shape']} axes {meta['axes']}"),
        ("as read (C, H, W)", f"{tuple(image.shape)} {image.dtype}"),
        ("channel names", ", ".join(meta["channel_names"]) if meta.get("channel_names") else "-"),
        (
            "pixel size (y, x)",
            "-" if not meta.get("pixel_size") else f"{meta['pixel_size'][0]:.4g} x {meta['pixel_size'][1]:.4g} µm",
        ),
        ("range per channel", ", ".join(f"{lo}..{hi}" for lo, hi in ranges)),
    ]
    width = max(len(k) for k, _ in rows)
    facts = {
        "file": str(path),
        "format": meta.get("format"),
        "stored_shape": list(meta["shape"]),
        "axes": meta["axes"],
        "shape": list(image.shape),
        "dtype": str(image.dtype),
        "channel_names": list(meta["channel_names"]) if meta.get("channel_names") else None,
        "pixel_size": list(meta["pixel_size"]) if meta.get("pixel_size") else None,
        "range_per_channel": [list(r) for r in ranges],
    }
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows), facts


def _write_json(path: Path, payload: Any, overwrite: bool) -> None:
    from ..io.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(payload, indent=1) + "\n", overwrite=overwrite)
    typer.echo(f"summary written to {path}")


# the options, in the order --help lists them
Dataset = Annotated[
    str,
    typer.Argument(
        help="Data set (bbbc018, bbbc018:nuclei, dsb2018-test, dsb2018-train, koyuncu, aitslab, aitslab:nuclei, aitslab-nuclei, cellprofiler-human, "
        "cellprofiler-fly, 'all'), a folder, a COCO .json file, or one image file.",
    ),
]
Split = Annotated[str | None, typer.Option("--split", "-s", help="Stored split: train, val or test.")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON to this file.")]
Root = Annotated[Path | None, typer.Option("--root", help="Data root (default: $LOCISEG_DATA or shared/data).")]
Channels = Annotated[str | None, typer.Option("--channels", "-c", help="Comma-separated channel names or indices.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")]


def main(
    dataset: Dataset,
    split: Split = None,
    json_out: JsonOut = None,
    root: Root = None,
    channels: Channels = None,
    overwrite: Overwrite = False,
) -> None:
    """Summarise a data set: images, shapes, channels, object counts and sizes.

    Examples: lociseg info bbbc018@val ; lociseg info koyuncu --split test --json koyuncu.json ;
    lociseg info all ; lociseg info image.ome.tif
    """
    from ..batch import check_new
    from ..errors import ConfigError, InputError
    from ..io.image import image_suffix_ok, path_problem

    if json_out is not None and (json_out.is_dir() or json_out.suffix.lower() != ".json"):
        raise ConfigError("--json must be a file path ending in .json (not a folder)", path=json_out)
    if json_out is not None:
        check_new([json_out], overwrite)
    chans = None if channels is None else [c.strip() for c in channels.split(",") if c.strip()]
    path = Path(dataset)
    if path.is_symlink() and not path.exists():
        raise InputError(path_problem(path), path=path)
    errors: dict[str, str] = {}
    if path.is_file() and image_suffix_ok(path):
        text, payload = _image_info(path)
        typer.echo(text)
    else:
        payload, errors = _summarise(dataset, split, root, chans)
    if json_out is not None:
        _write_json(json_out, payload, overwrite)
    if errors:
        typer.echo(f"{len(errors)} failure(s):", err=True)
        for where, err in errors.items():
            typer.echo(f"  {where}: {err}", err=True)
        # a LociError gives a non-zero exit status through lociseg.cli.main.run
        raise InputError(f"{len(errors)} item(s) could not be read (listed above)")


def _summarise(
    dataset: str, split: str | None, root: Path | None, chans: list[str] | None
) -> tuple[Any, dict[str, str]]:
    """Print the summary of each data set (all of them for ``all``); the JSON payload and what failed.

    One data set that cannot be read is an error; with ``all``, the others are still summarised.
    """
    from ..data import DATASETS, dataset_summary, load_dataset
    from ..errors import LociError

    specs = sorted(DATASETS) + ["bbbc018:nuclei", "aitslab:nuclei"] if dataset == "all" else [dataset]
    summaries: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            ds = load_dataset(spec, split=split, root=root, channels=chans)
            summary = dataset_summary(ds)
        except LociError as exc:
            if len(specs) == 1:
                raise
            errors[spec] = str(exc)  # carry on with the other data sets
            continue
        summaries[spec] = summary
        if len(specs) > 1:
            typer.echo(f"== {spec}")
        typer.echo(format_summary(summary))
        for name, err in summary["failed"].items():
            errors[f"{spec} {name}" if len(specs) > 1 else name] = err
    return summaries[specs[0]] if len(specs) == 1 and specs[0] in summaries else summaries, errors

"""``lociseg export-model``: a trained model as TorchScript, ONNX or a bioimage.io package."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import check_new


def main(
    model: str = typer.Argument(..., help="Checkpoint folder, run folder or shipped model name."),
    fmt: str = typer.Option(..., "--format", "-f", help="torchscript, onnx or bioimageio."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (torchscript/onnx) or folder (bioimageio)."),
    test_image: Path | None = typer.Option(
        None,
        "--test-image",
        help="Raw image for the bioimage.io test tensors (cropped to a multiple of 32, at most 256 px).",
    ),
    license: str = typer.Option(
        "BSD-3-Clause",
        "--license",
        help="SPDX licence of the weights (bioimageio); CC-BY-NC-SA-4.0 for BBBC018-trained models.",
    ),
    name: str | None = typer.Option(None, "--name", help="Model name (bioimageio)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file or package folder."),
) -> int:
    """Export a model's dense network (TorchScript, ONNX) or a bioimage.io package; checks outputs against PyTorch.

    Example: lociseg export-model nuclei --format onnx --out nuclei.onnx
    """
    from ..errors import ConfigError
    from ..export.model import (
        MODEL_FORMATS,
        export_bioimageio,
        export_onnx,
        export_torchscript,
        max_output_difference,
    )
    from ..io.files import atomic_write
    from ..predict.api import load_model

    fmt = fmt.lower()
    if fmt not in MODEL_FORMATS:
        raise ConfigError(f"unknown model format {fmt!r}; choose from {', '.join(MODEL_FORMATS)}")
    if fmt == "bioimageio" and out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder for --format bioimageio, not a file", path=out)
    if fmt != "bioimageio" and out.is_dir():
        raise ConfigError(f"--out must be a file path for --format {fmt}, not a folder", path=out)
    if test_image is not None and not test_image.is_file():
        raise ConfigError("--test-image: no such file", path=test_image)
    check_new([out], overwrite)  # before the model is loaded or anything is written
    net = load_model(model, device="cpu").model
    if fmt == "bioimageio":
        img = None
        if test_image is not None:
            from ..io import read_image
            from ..predict.api import Segmenter

            img = Segmenter(net, device="cpu").select_channels(read_image(test_image))
            h, w = (min(256, s - s % 32) for s in img.shape[-2:])
            if h < 32 or w < 32:
                raise ConfigError("test image must be at least 32 x 32 pixels", path=test_image)
            img = img[:, :h, :w]
        out.parent.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        atomic_write(
            out,
            lambda tmp: written.append(
                export_bioimageio(net, tmp, test_image=img, license=license, name=name or f"lociseg {Path(model).name}")
            ),
            overwrite=overwrite,
        )
        rdf = out / written[0].name
        typer.echo(f"bioimage.io package written: {rdf}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    exporter = export_torchscript if fmt == "torchscript" else export_onnx
    path = atomic_write(out, lambda tmp: exporter(net, tmp), overwrite=overwrite)
    diffs = max_output_difference(net, path)
    typer.echo(
        f"{fmt} written: {path} (largest difference to PyTorch per output: {', '.join(f'{d:.2g}' for d in diffs)})"
    )
    if max(diffs) > 1e-3:
        typer.echo("warning: exported outputs differ from PyTorch by more than 1e-3", err=True)
        raise typer.Exit(1)
    return 0

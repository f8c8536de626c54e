"""``lociseg export-model``: a trained model as TorchScript, ONNX or a bioimage.io package (:func:`lociseg.export.model.export_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# the options, in the order --help lists them
Model = Annotated[str, typer.Argument(help="Checkpoint folder, run folder or shipped model name.")]
Format = Annotated[str, typer.Option("--format", "-f", help="torchscript, onnx or bioimageio.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output file (torchscript/onnx) or folder (bioimageio).")]
TestImage = Annotated[
    Path | None,
    typer.Option(
        "--test-image",
        help="Raw image for the bioimage.io test tensors (cropped to a multiple of 32, at most 256 px).",
    ),
]
License = Annotated[
    str,
    typer.Option(
        "--license",
        help="SPDX licence of the weights (bioimageio); CC-BY-NC-SA-4.0 for BBBC018-trained models.",
    ),
]
Name = Annotated[str | None, typer.Option("--name", help="Model name (bioimageio).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file or package folder.")]


def main(
    model: Model,
    fmt: Format = ...,
    out: Out = ...,
    test_image: TestImage = None,
    license: License = "BSD-3-Clause",
    name: Name = None,
    overwrite: Overwrite = False,
) -> int:
    """Export a model's dense network (TorchScript, ONNX) or a bioimage.io package; checks outputs against PyTorch.

    Example: lociseg export-model nuclei --format onnx --out nuclei.onnx
    """
    from ..export.model import export_model

    done = export_model(model, fmt, out, test_image=test_image, license=license, name=name, overwrite=overwrite)
    if done.fmt == "bioimageio":
        typer.echo(f"bioimage.io package written: {done.path}")
        return 0
    diffs = ", ".join(f"{d:.2g}" for d in done.differences)
    typer.echo(f"{done.fmt} written: {done.path} (largest difference to PyTorch per output: {diffs})")
    if done.differs:
        typer.echo("warning: exported outputs differ from PyTorch by more than 1e-3", err=True)  # MAX_DIFFERENCE
        raise typer.Exit(1)
    return 0

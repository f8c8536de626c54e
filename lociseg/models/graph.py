"""The dense network of a model as a graph: the form the exporters and the ONNX Runtime backend take.

``model.forward`` maps a normalised ``(B, C, H, W)`` float32 image (H, W
multiples of 32) to dense maps (for LACSS: location score logits, offsets
and segmentation-head features, all at stride 4). :func:`export_onnx` writes
it as one ONNX file with dynamic batch size, height and width; ``lociseg
export-model`` (:mod:`lociseg.export.model`) and the ``onnx`` backend of
``segment`` (:mod:`lociseg.predict.backend`) both use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .lacss import LacssModel

__all__ = [
    "SIZE_MULTIPLE",
    "DenseForward",
    "as_tuple",
    "check_shape",
    "example_input",
    "export_onnx",
    "input_spec",
    "output_names",
]

SIZE_MULTIPLE = 32


def output_names(model: torch.nn.Module, probabilities: bool = False) -> list[str]:
    """Names of ``model.forward``'s outputs, in order."""
    if isinstance(model, LacssModel):
        return ["score" if probabilities else "score_logits", "offsets", "seg_features"]
    with torch.no_grad():
        out = model(example_input(model, (64, 64)))
    return [f"output{i}" for i in range(len(out) if isinstance(out, (tuple, list)) else 1)]


def input_spec(model: torch.nn.Module) -> Any:
    """The :class:`~lociseg.models.base.InputSpec` of a lociseg model; ConfigError for any other module."""
    spec = getattr(getattr(model, "config", None), "input", None)
    if spec is None:
        raise ConfigError(f"{type(model).__name__} has no config.input (InputSpec): not a lociseg model")
    return spec


def example_input(model: torch.nn.Module, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded random (1, C, H, W) input of the model's channel count."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, int(input_spec(model).in_channels), *shape), generator=g)


def as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    """A network's output(s) as a tuple."""
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class DenseForward(torch.nn.Module):
    """``forward`` of a model as a tuple of tensors (the form both exporters want).

    ``probabilities=True`` turns the first output (LACSS location logits)
    into probabilities, the form bioimage.io consumers can threshold directly.
    """

    def __init__(self, model: torch.nn.Module, probabilities: bool = False) -> None:
        super().__init__()
        self.model = model
        self.probabilities = probabilities

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = as_tuple(self.model(image))
        if self.probabilities:
            out = (torch.sigmoid(out[0]),) + out[1:]
        return out


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    example_shape: tuple[int, int] = (256, 256),
    opset: int = 18,
    max_size: int = 8192,
    probabilities: bool = False,
) -> Path:
    """Export ``model.forward`` to a single ONNX file with dynamic batch size, height and width.

    Parameters
    ----------
    model : SegmentationModel
    path : path-like
    example_shape : (int, int)
    opset : int
        ONNX opset version.
    max_size : int
        Largest H and W the graph accepts (multiples of 32).
    probabilities : bool
        Sigmoid on the first output (location logits -> probabilities).
    """
    check_shape(example_shape)
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ModuleNotFoundError:
        raise ConfigError("ONNX export needs 'onnx' and 'onnxscript': pip install 'lociseg[export]'") from None
    model = model.eval().cpu()
    batch = torch.export.Dim("batch", min=1, max=1024)
    h = torch.export.Dim("h32", min=1, max=max_size // SIZE_MULTIPLE)
    w = torch.export.Dim("w32", min=1, max=max_size // SIZE_MULTIPLE)
    # a batch of 2 in the example: with 1, the exporter may specialise the batch axis to a constant
    example = example_input(model, example_shape).expand(2, -1, -1, -1).contiguous()
    with _quiet_exporter():
        program = _onnx_program(model, example, probabilities, batch, h, w, opset)
    path = Path(path)
    program.save(str(path), external_data=False)  # one file: weights inside
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The ONNX exporter's own chatter (one INFO line per graph rewrite, missing torchvision ops) off."""
    names = ("onnxscript", "onnx_ir", "torch.onnx")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _onnx_program(
    model: Any, example: torch.Tensor, probabilities: bool, batch: Any, h: Any, w: Any, opset: int
) -> Any:
    return torch.onnx.export(
        DenseForward(model, probabilities).eval(),
        (example,),
        None,
        dynamo=True,
        input_names=["image"],
        output_names=output_names(model, probabilities),
        dynamic_shapes={"image": {0: batch, 2: SIZE_MULTIPLE * h, 3: SIZE_MULTIPLE * w}},
        opset_version=opset,
        verbose=False,
    )


def check_shape(shape: Sequence[int]) -> None:
    """ConfigError unless ``shape`` is two positive multiples of :data:`SIZE_MULTIPLE`."""
    if len(shape) != 2 or any(int(s) % SIZE_MULTIPLE or int(s) <= 0 for s in shape):
        raise ConfigError(f"example shape must be two positive multiples of {SIZE_MULTIPLE}, got {tuple(shape)}")

"""Export the dense network of a model to TorchScript, ONNX or a bioimage.io package.

What is exported is ``model.forward``: a normalised ``(B, C, H, W)`` float32
image (H, W multiples of 32) to dense maps. For LACSS these are the
location score logits ``(B, H/4, W/4)``, the offsets ``(B, 2, H/4, W/4)``
and the segmentation-head features ``(B, width, H/4, W/4)``. Decoding
locations and cutting per-cell masks stays in Python (lociseg or any
consumer); the heavy convolutional part runs in the exported runtime.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batch import check_new
from ..errors import ConfigError
from ..io import read_image
from ..io.files import atomic_write, sha256_file
from ..models.graph import (
    SIZE_MULTIPLE,
    DenseForward,
    as_tuple,
    check_shape,
    example_input,
    export_onnx,
    input_spec,
    output_names,
)
from ..predict.api import Segmenter, load_model

__all__ = [
    "MODEL_FORMATS",
    "output_names",
    "export_torchscript",
    "export_onnx",
    "run_exported",
    "max_output_difference",
    "export_bioimageio",
    "ModelExport",
    "check_model_export",
    "export_model",
]

MODEL_FORMATS = ("torchscript", "onnx", "bioimageio")
#: Largest difference of an exported output to PyTorch that counts as the same network.
MAX_DIFFERENCE = 1e-3


def export_torchscript(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    example_shape: tuple[int, int] = (256, 256),
    probabilities: bool = False,
) -> Path:
    """Trace ``model.forward`` to a TorchScript file.

    The model's :class:`~lociseg.models.base.InputSpec` is stored inside the
    file as the extra file ``lociseg_input.json``.

    Parameters
    ----------
    model : SegmentationModel
    path : path-like
    example_shape : (int, int)
        Size of the tracing input; the traced network accepts other sizes
        (multiples of 32) as it has no size-dependent Python control flow.
    probabilities : bool
        Sigmoid on the first output (location logits -> probabilities).
    """
    check_shape(example_shape)
    model = model.eval().cpu()
    with torch.no_grad():
        traced = torch.jit.trace(
            DenseForward(model, probabilities).eval(), (example_input(model, example_shape),), check_trace=False
        )
    path = Path(path)
    extra = {"lociseg_input.json": json.dumps(input_spec(model).to_dict())}
    buffer = io.BytesIO()  # torch writes files in C++: a failed write would be a RuntimeError, not an OSError
    torch.jit.save(traced, buffer, _extra_files=extra)
    Path(path).write_bytes(buffer.getvalue())
    return path


def run_exported(path: str | os.PathLike, image: np.ndarray) -> list[np.ndarray]:
    """Run an exported ``.pt``/``.torchscript`` or ``.onnx`` file on a (B, C, H, W) float32 array."""
    path = Path(path)
    x = np.ascontiguousarray(image, np.float32)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return list(sess.run(None, {sess.get_inputs()[0].name: x}))
    net = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return [t.numpy() for t in as_tuple(net(torch.from_numpy(x)))]


def max_output_difference(
    model: torch.nn.Module,
    path: str | os.PathLike,
    image: np.ndarray | None = None,
    shape: tuple[int, int] = (160, 224),
) -> list[float]:
    """Largest absolute difference between the eager model and an exported file, per output."""
    x = example_input(model, shape, seed=1).numpy() if image is None else np.asarray(image, np.float32)
    with torch.no_grad():
        eager = [t.numpy() for t in as_tuple(model.eval().cpu()(torch.from_numpy(x)))]
    got = run_exported(path, x)
    if len(got) != len(eager):
        raise AssertionError(f"exported model gives {len(got)} outputs, eager {len(eager)}")
    return [float(np.abs(a - b).max()) if a.shape == b.shape else float("inf") for a, b in zip(got, eager)]


def _output_specs(out: Path, names: list[str], outs: list[np.ndarray], width: int) -> list[dict[str, Any]]:
    """Save each test output and describe it for the RDF (its axes scaled against the input's)."""
    ref = {"tensor_id": "image"}
    outputs = []
    for nm, arr in zip(names, outs):
        np.save(out / f"test_output_{nm}.npy", arr)
        scale = width / arr.shape[-1]
        axes: list[dict[str, Any]] = [{"type": "batch"}]
        if arr.ndim == 4:
            labels = (
                ["dy", "dx"] if nm == "offsets" and arr.shape[1] == 2 else [f"{nm}{i}" for i in range(arr.shape[1])]
            )
            axes.append({"type": "channel", "channel_names": labels})
        axes += [
            {"id": ax, "type": "space", "size": {**ref, "axis_id": ax}, "scale": float(scale)} for ax in ("y", "x")
        ]
        outputs.append(
            {
                "id": nm,
                "axes": axes,
                "data": {"type": "float32"},
                "test_tensor": {
                    "source": f"test_output_{nm}.npy",
                    "sha256": sha256_file(out / f"test_output_{nm}.npy"),
                },
            }
        )
    return outputs


def _export_weights(
    model: torch.nn.Module, out: Path, weights: Sequence[str], shape: tuple[int, int]
) -> dict[str, Any]:
    """Write the requested weight formats; their RDF entries."""
    w: dict[str, Any] = {}
    if "torchscript" in weights:
        p = export_torchscript(model, out / "weights.torchscript", example_shape=shape, probabilities=True)
        w["torchscript"] = {
            "source": p.name,
            "sha256": sha256_file(p),
            "pytorch_version": torch.__version__.split("+")[0],
        }
    if "onnx" in weights:
        p = export_onnx(model, out / "weights.onnx", example_shape=shape, probabilities=True)
        w["onnx"] = {"source": p.name, "sha256": sha256_file(p), "opset_version": 18}
        if "torchscript" in w:
            w["onnx"]["parent"] = "torchscript"  # both come from the same eager model; the spec wants one root
    return w


def _write_readme(
    out: Path, name: str, description: str, chan_names: list[str], target_diameter: float, names: list[str]
) -> Path:
    """The package's README.md: what goes in and what comes out."""
    readme = out / "README.md"
    readme.write_text(
        f"# {name}\n\n{description}\n\n"
        "Input: raw image, channels " + ", ".join(chan_names) + f", rescaled so cells are about "
        f"{target_diameter:g} px across. Outputs are dense stride-4 maps: " + ", ".join(names) + ". "
        "Cell locations and masks are decoded from them by lociseg (`lociseg segment`).\n\n"
        "# Validation\n\nThe test tensors were produced by the eager PyTorch model; the TorchScript and ONNX "
        "weights reproduce them (checked by lociseg's export tests).\n"
    )
    return readme


def _input_spec(chan_names: list[str], sha256: str, spec: Any) -> dict[str, Any]:
    """The RDF entry of the input: raw image, its percentile normalisation as preprocessing."""
    return {
        "id": "image",
        "axes": [
            {"type": "batch"},
            {"type": "channel", "channel_names": chan_names},
            {"id": "y", "type": "space", "size": {"min": SIZE_MULTIPLE, "step": SIZE_MULTIPLE}},
            {"id": "x", "type": "space", "size": {"min": SIZE_MULTIPLE, "step": SIZE_MULTIPLE}},
        ],
        "data": {"type": "float32"},
        "test_tensor": {"source": "test_input.npy", "sha256": sha256},
        "preprocessing": [
            {
                "id": "scale_range",
                "kwargs": {
                    "axes": ["y", "x"],
                    "min_percentile": float(spec.normalize_low),
                    "max_percentile": float(spec.normalize_high),
                },
            }
        ],
    }


def _tolerances(names: list[str], outs: list[np.ndarray]) -> list[dict[str, Any]]:
    """Reproducibility tolerance of each output: the spec caps the absolute one at 1 % of the test output's maximum."""
    return [
        {
            "output_ids": [nm],
            "relative_tolerance": 1e-3,
            "absolute_tolerance": float(min(1e-4, 0.005 * max(float(arr.max()), 0.0))),
        }
        for nm, arr in zip(names, outs)
    ]


def export_bioimageio(
    model: torch.nn.Module,
    out_dir: str | os.PathLike,
    *,
    name: str = "lociseg LACSS model",
    description: str = "Single-cell instance segmentation (LACSS) trained with lociseg.",
    authors: Sequence[str] = ("lociseg contributors",),
    license: str = "BSD-3-Clause",
    test_image: np.ndarray | None = None,
    weights: Sequence[str] = ("torchscript", "onnx"),
) -> Path:
    """Write a bioimage.io model package (RDF format 0.5) into ``out_dir``.

    Files: ``rdf.yaml``, ``README.md``, ``test_input.npy``, one
    ``test_output_<name>.npy`` per output, and the weights
    (``weights.torchscript``, ``weights.onnx``), whose first output is the
    location *probability* ``score`` (sigmoid applied). The RDF declares the
    percentile normalisation as ``scale_range`` preprocessing, so the test
    input is the raw image.

    Parameters
    ----------
    model : SegmentationModel
    out_dir : path-like
    name, description : str
    authors : sequence of str
    license : str
        SPDX id; use a non-commercial licence for weights trained on
        non-commercial data (e.g. ``CC-BY-NC-SA-4.0`` for BBBC018).
    test_image : (C, H, W) ndarray, optional
        Raw test image (H, W multiples of 32); default: random 128 x 128.
    weights : sequence of {"torchscript", "onnx"}

    Returns
    -------
    Path
        The ``rdf.yaml`` written.
    """
    import yaml

    from ..transforms import normalize_percentile

    bad = [w for w in weights if w not in ("torchscript", "onnx")]
    if bad or not weights:
        raise ConfigError(f"bioimage.io weights must be torchscript and/or onnx, got {list(weights)}")
    spec = input_spec(model)
    model = model.eval().cpu()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = int(spec.in_channels)
    if test_image is None:
        test_image = (np.random.default_rng(0).random((c, 128, 128)) * 1000).astype(np.float32)
    raw = np.asarray(test_image, np.float32)
    if raw.ndim != 3 or raw.shape[0] != c:
        raise ConfigError(f"test image must be ({c}, H, W), got {raw.shape}")
    check_shape(raw.shape[1:])
    x = normalize_percentile(raw, spec.normalize_low, spec.normalize_high).astype(np.float32)[None]
    names = output_names(model, probabilities=True)
    with torch.no_grad():
        outs = [t.numpy() for t in DenseForward(model, probabilities=True)(torch.from_numpy(x))]
    np.save(out / "test_input.npy", raw[None])
    chan_names = list(spec.channels) if len(spec.channels) == c else [f"channel{i}" for i in range(c)]
    outputs = _output_specs(out, names, outs, raw.shape[-1])
    w = _export_weights(model, out, weights, tuple(raw.shape[1:]))
    readme = _write_readme(out, name, description, chan_names, spec.target_diameter, names)
    rdf = {
        "format_version": "0.5.4",
        "type": "model",
        "name": name,
        "description": description,
        "authors": [{"name": a} for a in authors],
        "cite": [
            {
                "text": "LACSS: location assisted cell segmentation and self-supervision (Han & Yun)",
                "url": "https://github.com/jiyuuchc/lacss",
            }
        ],
        "license": license,
        "documentation": readme.name,
        "tags": ["instance-segmentation", "cells", "nuclei", "fluorescence-light-microscopy", "2d", "pytorch"],
        "inputs": [
            _input_spec(chan_names, sha256_file(out / "test_input.npy"), spec),
        ],
        "outputs": outputs,
        "weights": w,
        "config": {
            "lociseg": {"input": spec.to_dict()},
            "bioimageio": {"reproducibility_tolerance": _tolerances(names, outs)},
        },
    }
    rdf_path = out / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump(rdf, sort_keys=False))
    return rdf_path


@dataclass
class ModelExport:
    """What :func:`export_model` wrote.

    Attributes
    ----------
    fmt : str
        One of :data:`MODEL_FORMATS`.
    path : Path
        The exported file, or the ``rdf.yaml`` of a bioimage.io package.
    differences : list of float
        Largest difference to PyTorch per output (TorchScript, ONNX; empty for bioimage.io).
    """

    fmt: str
    path: Path
    differences: list[float]

    @property
    def differs(self) -> bool:
        """An output differs from PyTorch by more than :data:`MAX_DIFFERENCE`."""
        return bool(self.differences) and max(self.differences) > MAX_DIFFERENCE


def check_model_export(fmt: str, out: Path, test_image: Path | None, overwrite: bool) -> str:
    """The format, lower case, after refusing options that cannot work (before the model is loaded).

    Raises
    ------
    ConfigError
        An unknown format, an ``out`` of the wrong kind or a missing test image.
    InputError
        ``out`` exists and not ``overwrite``.
    """
    fmt = fmt.lower()
    if fmt not in MODEL_FORMATS:
        raise ConfigError(f"unknown model format {fmt!r}; choose from {', '.join(MODEL_FORMATS)}")
    if fmt == "bioimageio" and out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder for --format bioimageio, not a file", path=out)
    if fmt != "bioimageio" and out.is_dir():
        raise ConfigError(f"--out must be a file path for --format {fmt}, not a folder", path=out)
    if test_image is not None and not test_image.is_file():
        raise ConfigError("--test-image: no such file", path=test_image)
    check_new([out], overwrite)
    return fmt


def _test_tensor(model: torch.nn.Module, path: Path) -> np.ndarray:
    """The model's channels of the image at ``path``, cropped to a multiple of 32 px, at most 256 px a side."""
    img = Segmenter(model, device="cpu").select_channels(read_image(path))
    h, w = (min(256, s - s % SIZE_MULTIPLE) for s in img.shape[-2:])
    if h < SIZE_MULTIPLE or w < SIZE_MULTIPLE:
        raise ConfigError("test image must be at least 32 x 32 pixels", path=path)
    return img[:, :h, :w]


def export_model(
    model: str,
    fmt: str,
    out: str | os.PathLike,
    *,
    test_image: Path | None = None,
    license: str = "BSD-3-Clause",
    name: str | None = None,
    overwrite: bool = False,
) -> ModelExport:
    """Export a model (checkpoint, run folder or shipped name) to ``out``, written atomically.

    Parameters
    ----------
    model : str
        What :func:`~lociseg.predict.load_model` loads.
    fmt : str
        One of :data:`MODEL_FORMATS` (any case).
    out : path-like
        Output file (TorchScript, ONNX) or package folder (bioimage.io).
    test_image : Path, optional
        Raw image for the bioimage.io test tensors.
    license, name : str
        The bioimage.io package's SPDX licence and name (default ``lociseg <model>``).
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    ModelExport
        TorchScript and ONNX are run and compared with PyTorch.
    """
    out = Path(out)
    fmt = check_model_export(fmt, out, test_image, overwrite)  # before the model is loaded
    net = load_model(model, device="cpu").model
    if fmt == "bioimageio":
        img = _test_tensor(net, test_image) if test_image is not None else None
        out.parent.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        atomic_write(
            out,
            lambda tmp: written.append(
                export_bioimageio(net, tmp, test_image=img, license=license, name=name or f"lociseg {Path(model).name}")
            ),
            overwrite=overwrite,
        )
        return ModelExport(fmt, out / written[0].name, [])
    out.parent.mkdir(parents=True, exist_ok=True)
    exporter = export_torchscript if fmt == "torchscript" else export_onnx
    path = atomic_write(out, lambda tmp: exporter(net, tmp), overwrite=overwrite)
    return ModelExport(fmt, path, max_output_difference(net, path))

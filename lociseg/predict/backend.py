"""The runtime of the network pass of :meth:`~lociseg.predict.api.Segmenter.segment`: PyTorch or ONNX Runtime.

``torch`` runs the model's own modules (eager, channels-last). ``onnx`` runs
the same weights as an ONNX graph (:func:`~lociseg.models.graph.export_onnx`)
in ONNX Runtime's CPU provider. Only the dense network (backbone, FPN and
heads: nearly all of the time) changes runtime; decoding the locations and
cutting the masks stay as they are, and so do the size model's encoder pass
and the ladder search's location pass. The graph is written once per set of
weights into :func:`cache_folder`, and its session is kept on the model
object (:func:`onnx_runner`), so every Segmenter of that model and every
later image reuse it. docs/scale.md ("Network runtime") has the measured speed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..models.graph import export_onnx
from ..models.lacss import LacssModel

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
"""Runtimes of the network pass, as ``backend=`` and ``--backend`` name them."""

OPSET = 18
RUNNER_ATTR = "onnx_runner"
"""Attribute of a model that holds its :class:`OnnxRunner` once built."""


class OnnxRunner:
    """A model's ONNX graph in an ONNX Runtime session: a (B, C, H, W) tensor to the dense outputs as tensors.

    Parameters
    ----------
    path : Path
        The graph (:func:`onnx_graph`).
    key : str
        :func:`graph_key` of the weights it was written from.
    threads : int
        ONNX Runtime's intra-op threads.

    A copied or pickled model does not carry the session along (it holds a
    native handle): the copy builds its own on first use.
    """

    def __init__(self, path: Path, key: str, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path, self.key, self.threads = path, key, threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The dense outputs of a normalised batch, as :meth:`~lociseg.models.lacss.LacssModel.forward` gives them."""
        array = np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)
        return tuple(torch.from_numpy(out) for out in self.session.run(None, {self.input: array}))

    def __deepcopy__(self, memo: dict) -> None:
        return None

    def __reduce__(self) -> tuple:
        return (_dropped, ())


def _dropped() -> None:
    """What a pickled :class:`OnnxRunner` becomes: nothing (the copy builds its own)."""
    return None


def cache_folder() -> Path:
    """Folder of the ONNX graphs: ``$LOCISEG_CACHE/onnx``, else ``$XDG_CACHE_HOME/lociseg/onnx`` or ``~/.cache/lociseg/onnx``."""
    root = os.environ.get("LOCISEG_CACHE")
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "lociseg" / "onnx"


def graph_key(model: torch.nn.Module) -> str:
    """Hash of a model's weights, configuration and the exporter's versions: the name of its graph in the cache."""
    h = hashlib.sha256(f"torch {torch.__version__} opset {OPSET}".encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def onnx_graph(model: torch.nn.Module, key: str) -> Path:
    """The model's ONNX graph in :func:`cache_folder`, written first when absent (a temporary folder if that is read-only)."""
    try:
        return _cached_graph(model, key, cache_folder())
    except OSError as e:
        log.info("ONNX cache folder not writable (%s): the graph goes to a temporary folder", e)
        return _cached_graph(model, key, Path(tempfile.mkdtemp(prefix="lociseg-onnx-")))


def _cached_graph(model: torch.nn.Module, key: str, folder: Path) -> Path:
    """``folder/<key>.onnx``, exported there first unless present."""
    path = folder / f"{key}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{key}.{os.getpid()}.part"
    log.info("writing the ONNX graph of the model to %s (once per set of weights)", path)
    try:
        export_onnx(copy.deepcopy(model).float().cpu(), part, opset=OPSET)
        os.replace(part, path)  # a process writing the same graph meanwhile writes the same bytes
    finally:
        part.unlink(missing_ok=True)
    return path


def onnx_runner(model: torch.nn.Module) -> OnnxRunner:
    """The model's :class:`OnnxRunner`, built on first use and kept on the model (:data:`RUNNER_ATTR`).

    Rebuilt when the weights or torch's thread count changed since.
    """
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("the onnx backend needs onnxruntime: pip install 'lociseg[onnx]'") from None
    key, threads = graph_key(model), torch.get_num_threads()
    runner = getattr(model, RUNNER_ATTR, None)
    if runner is None or runner.key != key or runner.threads != threads:
        runner = OnnxRunner(onnx_graph(model, key), key, threads)
        setattr(model, RUNNER_ATTR, runner)
    return runner


def check_backend(backend: str, model: torch.nn.Module, device: torch.device) -> None:
    """ConfigError unless ``backend`` is one of :data:`BACKENDS` and can run ``model`` on ``device``."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx" and not isinstance(model, LacssModel):
        raise ConfigError(f"the onnx backend runs LACSS models only, not {type(model).__name__}")
    if backend == "onnx" and torch.device(device).type != "cpu":
        raise ConfigError(f"the onnx backend runs on the CPU; use backend='torch' on {device}")

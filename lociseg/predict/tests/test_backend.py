"""The ONNX Runtime backend of segment against PyTorch, its session cache and its errors."""

import copy
import sys

import numpy as np
import pytest
import torch

from lociseg import load_dataset
from lociseg.errors import ConfigError
from lociseg.metrics.matching import match_instances
from lociseg.models.unet import UNetConfig, UNetModel
from lociseg.predict.api import Segmenter, load_model
from lociseg.predict.backend import RUNNER_ATTR, cache_folder, graph_key
from lociseg.scale_out.folder import segment_folder


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'lociseg[onnx]')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'lociseg[onnx]')")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCISEG_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield cache_folder()


def test_onnx_labels_are_the_torch_labels_on_a_real_field(onnx_cache, data_root):
    torch_seg = load_model("nuclei", device="cpu")
    onnx_seg = load_model("nuclei", device="cpu", backend="onnx")
    runner, calls = onnx_seg._forward, []
    onnx_seg._forward = lambda x: calls.append(x.shape) or runner(x)
    image = np.asarray(load_dataset("bbbc018:nuclei@test", channels=("DNA",))[0].image)[:, :256, :384]
    a, _ = torch_seg.segment(image, diameter=11.5)
    b, table = onnx_seg.segment(image, diameter=11.5)
    assert a.max() > 20 and table.meta["backend"] == "onnx" and calls  # the network ran in ONNX Runtime
    m = match_instances(a, b, [0.9])
    assert m.tp[0] == a.max() == b.max()  # every cell matched at IoU 0.9
    assert np.mean(a == b) > 0.999
    assert len(list(onnx_cache.glob("*.onnx"))) == 1


def test_session_is_kept_on_the_model_and_not_copied(onnx_cache):
    torch.manual_seed(0)
    first = load_model("nuclei", device="cpu", backend="onnx")
    runner = getattr(first.model, RUNNER_ATTR)
    again = Segmenter(first.model, device="cpu", backend="onnx")  # same model object: same session
    assert getattr(again.model, RUNNER_ATTR) is runner
    twin = copy.deepcopy(first.model)
    assert getattr(twin, RUNNER_ATTR) is None and graph_key(twin) == runner.key
    with torch.no_grad():
        twin.backbone.stem[0].weight.add_(0.01)  # other weights: another graph
    assert graph_key(twin) != runner.key


def test_missing_onnxruntime_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = copy.deepcopy(load_model("nuclei", device="cpu").model)
    with pytest.raises(ConfigError, match=r"^the onnx backend needs onnxruntime: pip install 'lociseg\[onnx\]'$"):
        Segmenter(model, device="cpu", backend="onnx")


def test_backend_is_checked():
    seg = load_model("nuclei", device="cpu")
    with pytest.raises(ConfigError, match="backend must be one of torch, onnx"):
        Segmenter(seg.model, device="cpu", backend="tensorrt")
    with pytest.raises(ConfigError, match="LACSS models only"):
        Segmenter(UNetModel(UNetConfig()), device="cpu", backend="onnx")


def test_cluster_runs_torch_only(tmp_path):
    with pytest.raises(ConfigError, match="--backend onnx runs without --cluster only"):
        segment_folder([str(tmp_path)], "nuclei", tmp_path / "out", "local", backend="onnx")

"""TorchScript / ONNX exports match the eager network; bioimage.io package validates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lociseg.errors import ConfigError
from lociseg.export import model as M

# TorchScript is deprecated in torch 2.x but is what bioimage.io and many deployment tools load
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def lacss():
    from lociseg.models import LacssModel
    from lociseg.models.lacss import LacssConfig

    torch.manual_seed(0)
    m = LacssModel(LacssConfig()).eval()
    # a freshly built head can be near-constant; random-ish weights make the comparison meaningful
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def real_crop(data_root):
    from lociseg.data import load_dataset
    from lociseg.transforms import normalize_percentile

    s = load_dataset("bbbc018@test", root=data_root)[0]
    return normalize_percentile(s.image[:, 100:260, 64:288])[None]  # (1, 2, 160, 224)


def test_torchscript_matches_eager_at_other_size(tmp_path, lacss, real_crop):
    path = M.export_torchscript(lacss, tmp_path / "m.torchscript", example_shape=(128, 128))
    diffs = M.max_output_difference(lacss, path, real_crop)
    assert len(diffs) == 3 and max(diffs) < 1e-4, diffs
    extra = {"lociseg_input.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert b'"in_channels": 2' in extra["lociseg_input.json"]


def test_onnx_matches_eager_with_dynamic_size(tmp_path, lacss, real_crop):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'lociseg[export]')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'lociseg[export]')")
    path = M.export_onnx(lacss, tmp_path / "m.onnx", example_shape=(128, 128))
    assert not (tmp_path / "m.onnx.data").exists()  # weights inside the one file
    diffs = M.max_output_difference(lacss, path, real_crop)
    assert max(diffs) < 1e-3, diffs
    outs = M.run_exported(path, real_crop)
    assert [o.shape for o in outs] == [(1, 40, 56), (1, 2, 40, 56), (1, 32, 40, 56)]
    # any batch size (bioimage.io declares the batch axis free): each item as if run alone
    batch = np.concatenate([real_crop, real_crop[:, :, ::-1].copy(), 0.5 * real_crop])
    outs3 = M.run_exported(path, batch)
    assert [o.shape[0] for o in outs3] == [3, 3, 3]
    np.testing.assert_allclose(outs3[0][:1], outs[0], atol=1e-4)
    assert max(M.max_output_difference(lacss, path, batch)) < 1e-3


def test_bad_example_shape(tmp_path, lacss):
    with pytest.raises(ConfigError, match="multiples of 32"):
        M.export_torchscript(lacss, tmp_path / "m.pt", example_shape=(100, 128))


def test_bioimageio_package_validates(tmp_path, lacss, data_root):
    pytest.importorskip("onnxscript", reason="onnxscript not installed")
    from lociseg.data import load_dataset

    raw = load_dataset("bbbc018@test", root=data_root)[0].image[:, :128, :128].astype(np.float32)
    rdf = M.export_bioimageio(lacss, tmp_path / "pkg", test_image=raw, license="CC-BY-NC-SA-4.0")
    files = {p.name for p in (tmp_path / "pkg").iterdir()}
    assert {
        "rdf.yaml",
        "README.md",
        "test_input.npy",
        "weights.torchscript",
        "weights.onnx",
        "test_output_score.npy",
        "test_output_offsets.npy",
        "test_output_seg_features.npy",
    } <= files
    # the stored test output is what the TorchScript weights give for the normalised test input
    from lociseg.transforms import normalize_percentile

    x = normalize_percentile(np.load(tmp_path / "pkg" / "test_input.npy")[0])[None]
    got = M.run_exported(tmp_path / "pkg" / "weights.torchscript", x)
    np.testing.assert_allclose(got[0], np.load(tmp_path / "pkg" / "test_output_score.npy"), atol=1e-4)
    spec = pytest.importorskip("bioimageio.spec", reason="bioimageio.spec not installed")
    descr = spec.load_description(rdf, perform_io_checks=True)
    summary = getattr(descr, "validation_summary", None)
    assert summary is not None and summary.status in ("passed", "valid-format"), summary.format() if summary else descr

"""The prediction API with a real LACSS checkpoint: the shipped ``cells`` model, copied into a run folder."""

import numpy as np
import pytest

from lociseg.cli.main import run
from lociseg.predict import api


@pytest.fixture
def checkpoint(tmp_path):
    import shutil

    from lociseg.models.pretrained import resolve_model

    shutil.copytree(resolve_model("cells"), tmp_path / "run" / "best")
    return tmp_path / "run"


def test_segment_real_image_and_reload_identical(checkpoint, data_root):
    from lociseg.data import load_dataset

    img = load_dataset("bbbc018@test", root=data_root)[0].image
    seg = api.load_model(checkpoint, device="cpu")
    labels, table = seg.segment(img, diameter=23.0)
    assert labels.shape == img.shape[1:] and labels.dtype in (np.uint16, np.uint32)
    assert labels.max() == len(table.label) > 0
    assert table.meta["diameter_used"] == 23.0
    again, _ = api.load_model(checkpoint / "best" / "model.safetensors", device="cpu").segment(img, diameter=23.0)
    assert np.array_equal(labels, again)


def test_tiled_equals_untiled_with_lacss(checkpoint, data_root):
    from lociseg.data import load_dataset

    img = load_dataset("bbbc018@test", root=data_root)[1].image
    seg = api.load_model(checkpoint, device="cpu")
    whole, _ = seg.segment(img, diameter=32.0, tile_size=1024)
    tiled, _ = seg.segment(img, diameter=32.0, tile_size=256, overlap=128)
    from lociseg.metrics import match_instances

    m = match_instances(whole, tiled, thresholds=[0.9])
    assert m.tp[0] >= 0.99 * whole.max()


def test_segment_cli_with_checkpoint(checkpoint, data_root, tmp_path):
    src = data_root / "bbbc018" / "BBBC018_v1_images"
    f = sorted(src.glob("*-DNA.DIB"))[0]
    out = tmp_path / "seg"
    rc = run(
        [
            "segment",
            str(f),
            "--model",
            str(checkpoint / "best"),
            "--out",
            str(out),
            "--channels",
            "0,0",
            "--diameter",
            "23",
        ]
    )
    assert rc == 0
    assert len(list(out.glob("*.tif"))) == 1 and len(list(out.glob("*.csv"))) == 1

"""Tests of the ``lociseg synth`` command."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from lociseg.cli.main import run


def _write_folder(root, rng):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:64, :64]
    for k in range(2):
        labels = np.zeros((64, 64), np.uint16)
        for i, (cy, cx) in enumerate([(15, 15), (15, 45), (45, 30)], start=1):
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 49] = i
        image = (labels > 0) * 200 + rng.integers(0, 20, size=(64, 64))
        tifffile.imwrite(root / "images" / f"im{k}.tif", image.astype(np.uint16))
        tifffile.imwrite(root / "masks" / f"im{k}.tif", labels)


def test_synth_cli_writes_folder_layout(tmp_path, rng):
    src = tmp_path / "src"
    _write_folder(src, rng)
    out = tmp_path / "out"
    assert run(["synth", str(src), "--out", str(out), "--n-images", "3", "--confluence", "0.2,0.4"]) == 0
    names = sorted(p.stem for p in (out / "images").glob("*.tif"))
    assert names == ["synth_0000", "synth_0001", "synth_0002"]
    for n in names:
        img = tifffile.imread(out / "images" / f"{n}.tif")
        lab = tifffile.imread(out / "masks" / f"{n}.tif")
        assert img.shape[-2:] == lab.shape == (64, 64)
        assert (out / "annotations" / f"{n}.points.csv").exists()
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["params"]["n_images"] == 3 and set(manifest["images"]) == set(names)


def test_synth_cli_bad_confluence_is_a_one_line_error(tmp_path, rng, capsys):
    src = tmp_path / "src"
    _write_folder(src, rng)
    assert run(["synth", str(src), "--out", str(tmp_path / "o"), "--confluence", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--confluence" in err and "Traceback" not in err

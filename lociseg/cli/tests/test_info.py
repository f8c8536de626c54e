"""``lociseg info``: summaries, JSON output and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from lociseg.cli.main import run
from lociseg.io import write_labels


def test_info_dataset_with_json(data_root, tmp_path, capsys):
    out = tmp_path / "k.json"
    assert run(["info", "koyuncu", "--split", "val", "--root", str(data_root), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "koyuncu@val" in text and "objects" in text and "blue" in text
    summary = json.loads(out.read_text())
    assert summary["images"] == 2 and summary["labelled"] == 2
    assert summary["objects"]["total"] > 0 and summary["diameter"]["median"] > 5


def test_info_every_shared_dataset(data_root, tmp_path, capsys):
    out = tmp_path / "all.json"
    assert run(["info", "all", "--root", str(data_root), "--json", str(out)]) == 0
    summaries = json.loads(out.read_text())
    assert summaries["dsb2018-test"]["objects"]["total"] == 4152  # data README
    assert summaries["dsb2018-train"]["objects"]["total"] == 953
    assert summaries["koyuncu"]["objects"]["total"] == 3726
    assert summaries["cellprofiler-fly"]["images"] == 3
    assert summaries["bbbc018:nuclei"]["objects"]["total"] == 6815


def test_info_single_image(tmp_path, capsys):
    p = tmp_path / "x.ome.tif"
    tifffile.imwrite(
        p,
        np.zeros((2, 8, 9), np.uint16),
        ome=True,
        metadata={"axes": "CYX", "Channel": {"Name": ["a", "b"]}, "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3},
    )
    assert run(["info", str(p)]) == 0
    text = capsys.readouterr().out
    assert "(2, 8, 9) uint16" in text and "a, b" in text and "0.3 x 0.3" in text


def test_info_bad_input_is_one_line_without_traceback(tmp_path, capsys):
    assert run(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "missing" in err and "Traceback" not in err
    assert run(["info", "koyuncu", "--split", "nope"]) == 2
    assert "split must be one of" in capsys.readouterr().err


def test_info_carries_on_past_bad_files(tmp_path, capsys):
    d = tmp_path / "d"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    for name in ("a", "b", "c"):
        tifffile.imwrite(d / "images" / f"{name}.tif", np.full((16, 16), 3, np.uint8))
        write_labels(d / "masks" / f"{name}.tif", np.eye(16, dtype=np.int32))
    (d / "images" / "b.tif").write_bytes(b"II*\x00garbage")  # corrupt file in the middle
    write_labels(d / "masks" / "c.tif", np.zeros((15, 16), np.int32))  # wrong label shape
    assert run(["info", str(d)]) != 0
    captured = capsys.readouterr()
    assert "3 (1 labelled)" in captured.out  # a.tif still summarised
    assert "blank channels" in captured.out  # a.tif is constant: reported, not an error
    assert "2 failure(s)" in captured.err and "b.tif" in captured.err and "c.tif" in captured.err
    assert "Traceback" not in captured.err

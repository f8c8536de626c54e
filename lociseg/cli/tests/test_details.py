"""CLI details users tripped over (issue 35, part 3): flags, -c, help text, exporter chatter, output kinds."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import typer

from lociseg.cli.main import build_app, run


@pytest.mark.parametrize("word", ["true", "False", "yes"])
def test_flag_with_a_value_is_a_one_line_error(tmp_path, capsys, word):
    rc = run(["segment", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), "--augment", word])
    err = capsys.readouterr().err
    assert rc == 2 and "--augment is a flag and takes no value" in err and "unknown data set" not in err
    assert not (tmp_path / "o").exists()


def test_dash_c_means_channels_wherever_it_exists():
    group = typer.main.get_command(build_app())
    meaning = {
        name: next((p.name for p in cmd.params if "-c" in getattr(p, "opts", ())), None)
        for name, cmd in group.commands.items()
    }
    assert meaning["segment"] == "channels" and meaning["adapt"] is None and meaning["annotate"] is None
    # train has no channel option; its -c is the config file, as in every example
    assert {m for n, m in meaning.items() if n != "train"} <= {"channels", None}, meaning


def test_cluster_help_names_the_dask_extra(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    run(["segment", "--help"])
    assert "lociseg[dask]" in capsys.readouterr().out


def test_image_of_block_size_goes_to_ome_zarr(tmp_path, caplog):
    from lociseg.scale_out.folder import split_by_size

    for name, side in (("small", 255), ("exact", 256)):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((side, side), np.uint8))
    items = [(n, (n, str(tmp_path / f"{n}.tif"), None)) for n in ("small", "exact")]
    with caplog.at_level("INFO", logger="lociseg"):
        small, large = split_by_size(items, 256)
    assert [k for k, _ in small] == ["small"] and [k for k, _ in large] == ["exact"]
    assert "exact: 256 x 256 px" in caplog.text and "OME-Zarr" in caplog.text


@pytest.mark.slow
def test_onnx_export_prints_no_exporter_chatter(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    assert run(["export-model", "nuclei", "-o", str(tmp_path / "m.onnx"), "--format", "onnx"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("onnx written"), lines


def test_adapt_steps_below_one_is_refused(tmp_path, capsys):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.zeros((2, 64, 64), np.uint16))
    rc = run(["adapt", str(img), "-o", str(tmp_path / "o"), "-n", "0", "--cytoplasm", "1", "--steps", "0"])
    assert rc == 2 and "--steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_diameter_hint_names_the_option(tmp_path, capsys):
    yy, xx = np.mgrid[:128, :128]
    img = np.full((128, 128), 10, np.uint8)
    for cy, cx in ((30, 30), (30, 90), (90, 35), (95, 95)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 200
    tifffile.imwrite(tmp_path / "a.tif", img)
    assert run(["segment", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), "-m", "nuclei", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "cell diameter estimated" in line]
    assert hints and all("--diameter" in h and "pass diameter=" not in h for h in hints), err

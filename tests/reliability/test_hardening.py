"""What users tripped over (issue 35, part 4): data loss, tracebacks and silently wrong results.

Each case runs the real CLI (in-process, or a subprocess for the cluster)
and checks the exit status, the one-line message, and for a data-loss or
traceback case that nothing else changed on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lociseg.cli.main import run
from lociseg.predict.api import outputs_complete

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


def one_line(err: str, text: str) -> None:
    """``text`` is on one stderr line and no traceback was printed."""
    assert "Traceback" not in err
    assert any(text in line for line in err.splitlines()), err


def _blobs(size: int = 64, value: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 10, np.uint8)
    for cy, cx in ((16, 16), (16, 46), (46, 20), (44, 48)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = value
    return img


@pytest.fixture
def train_config(tmp_path, disk_scenes, write_scene_folder) -> Path:
    """A config file of the tiny LACSS on a folder of two disk images (seconds per run)."""
    from lociseg.train.config import ExperimentConfig

    folder = write_scene_folder(tmp_path / "disks", *disk_scenes(size=64, cells=5))
    cfg = ExperimentConfig().override(
        {
            "lacss.backbone.preset": "tiny",
            "data.train": [str(folder)],
            "data.val": [],
            "data.channels": ["0", "1"],
            "data.crop_size": 64,
            "optim.steps": 2,
            "optim.warmup_steps": 1,
            "optim.batch_size": 1,
            "optim.threads": 1,
        }
    )
    path = tmp_path / "cfg.yaml"
    cfg.to_yaml(path)
    return path


# ------------------------------------------------------------------ data loss


def test_adapt_resume_keeps_a_file_it_did_not_write(tmp_path, capsys, snapshot):
    """A finished adapt folder whose segmentation/a.csv a person replaced: --resume refuses, changes nothing."""
    img = tmp_path / "in" / "a.tif"
    img.parent.mkdir()
    tifffile.imwrite(img, np.stack([_blobs(), _blobs()]))
    out = tmp_path / "adapted"
    (out / "segmentation").mkdir(parents=True)
    (out / "adapt.json").write_text(json.dumps({"trained": True, "images": ["a"]}))
    (out / "segmentation" / "a.csv").write_text("my,own,table\n1,2,3\n")
    before = snapshot(tmp_path)
    rc = run(["adapt", str(img), "-o", str(out), "-n", "0", "--cytoplasm", "1", "--resume", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    one_line(err, "a.csv: is not an output lociseg wrote there")
    assert snapshot(tmp_path) == before


def test_adapt_resume_with_a_corrupt_record_is_an_error(tmp_path, capsys, snapshot):
    """A truncated adapt.json is not read as "nothing done yet": --resume stops with one line, changes nothing."""
    img = tmp_path / "in" / "a.tif"
    img.parent.mkdir()
    tifffile.imwrite(img, np.stack([_blobs(), _blobs()]))
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "adapt.json").write_text('{"trained": tr')
    before = snapshot(tmp_path)
    rc = run(["adapt", str(img), "-o", str(out), "-n", "0", "--cytoplasm", "1", "--resume", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    one_line(err, "adapt.json: unreadable")
    assert snapshot(tmp_path) == before


def test_adapt_resume_replaces_only_its_own_complete_outputs(tmp_path):
    from lociseg.predict.api import CellTable, write_outputs
    from lociseg.train.adapt import _check_own_outputs

    seg = tmp_path / "segmentation"
    labels = np.zeros((8, 8), np.uint16)
    labels[2:5, 2:5] = 1
    table = CellTable(np.array([1]), np.array([3.0]), np.array([3.0]), np.array([9]), np.array([0.9], np.float32))
    write_outputs(seg, "a", labels, table, {})
    write_outputs(seg, "b", labels, table, {})
    (seg / "b.lociseg.json").rename(seg / "b.json")  # as an earlier lociseg named the sidecar
    _check_own_outputs(seg, ["a", "b", "c"])  # lociseg's own, unchanged: fine to replace
    (seg / "a.csv").write_text("edited\n")
    with pytest.raises(Exception, match="is not an output lociseg wrote there"):
        _check_own_outputs(seg, ["a"])


def test_adapt_steps_zero_is_refused_not_ignored(tmp_path, capsys):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.stack([_blobs(), _blobs()]))
    rc = run(["adapt", str(img), "-o", str(tmp_path / "o"), "-n", "0", "--cytoplasm", "1", "--steps", "0"])
    one_line(capsys.readouterr().err, "--steps must be at least 1, got 0")
    assert rc == 2 and not (tmp_path / "o").exists()


# ------------------------------------------------------------------ tracebacks


def _no_space(*args, **kwargs):
    from safetensors import SafetensorError

    raise SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    )


def test_train_disk_full_at_a_checkpoint_is_one_line(tmp_path, train_config, monkeypatch, capsys):
    import lociseg.models.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "save_file", _no_space)
    out = tmp_path / "run"
    rc = run(["train", "-c", str(train_config), "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    one_line(err, "disk full while writing")
    assert not (out / "last").exists() and not (out / "best").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written checkpoint folder


def test_train_resume_disk_full_keeps_the_last_checkpoint(tmp_path, train_config, monkeypatch, capsys, snapshot):
    import lociseg.models.checkpoint as ckpt

    out = tmp_path / "run"
    assert run(["train", "-c", str(train_config), "-o", str(out), "--device", "cpu"]) == 0
    kept = {k: v for k, v in snapshot(out).items() if k.startswith(("last/", "best/"))}
    monkeypatch.setattr(ckpt, "save_file", _no_space)
    rc = run(["train", "-o", str(out), "--device", "cpu", "--resume", "--set", "optim.steps=4"])
    err = capsys.readouterr().err
    assert rc == 1
    one_line(err, "disk full while writing")
    assert {k: v for k, v in snapshot(out).items() if k.startswith(("last/", "best/"))} == kept
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_export_model_to_an_unwritable_place_is_one_line(tmp_path, monkeypatch, capsys, snapshot):
    """torch writes in C++: a file it cannot open was a RuntimeError traceback (read-only file system)."""
    import lociseg.io.files as files

    real = files._temp_name
    monkeypatch.setattr(files, "_temp_name", lambda path: real(path.parent / "gone" / path.name))
    before = snapshot(tmp_path)
    rc = run(["export-model", "nuclei", "-o", str(tmp_path / "m.pt"), "--format", "torchscript"])
    err = capsys.readouterr().err
    assert rc == 1
    one_line(err, "error: No such file or directory")
    assert snapshot(tmp_path) == before


def test_train_nproc_into_a_run_folder_refuses_before_starting_ranks(
    tmp_path, train_config, monkeypatch, capsys, snapshot
):
    import lociseg.cli.train as cli_train

    started: list[int] = []
    monkeypatch.setattr(cli_train, "_torchrun", lambda n: started.append(n))
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.csv").write_text("step,loss\n1,0.5\n")
    before = snapshot(tmp_path)
    rc = run(["train", "-c", str(train_config), "-o", str(out), "--device", "cpu", "--nproc", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and started == []
    one_line(err, "holds a training run")
    assert snapshot(tmp_path) == before


def test_cluster_bad_inputs_are_one_line_each_and_the_rest_segmented(tmp_path):
    """A truncated TIFF and an OME-Zarr with ``multiscales: []`` among the inputs of ``--cluster local:1``."""
    pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "good.tif", _blobs())
    tifffile.imwrite(src / "cut.tif", np.tile(_blobs(), (4, 4)))
    data = (src / "cut.tif").read_bytes()
    (src / "cut.tif").write_bytes(data[: len(data) // 2])
    g = zarr.open_group(str(src / "empty.ome.zarr"), mode="w", zarr_format=2)
    g.attrs["multiscales"] = []
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lociseg", "segment", str(src), "-o", str(out), "-m", "nuclei", "-d", "20"]
    p = subprocess.run(
        [*cmd, "--device", "cpu", "--cluster", "local:1"], env=env, capture_output=True, text=True, timeout=600
    )
    text = p.stdout + p.stderr
    assert p.returncode == 1, text
    assert "Traceback" not in text and "IndexError" not in text
    assert "1 image(s) segmented, 0 skipped, 2 failed" in text
    one_line(p.stderr, "empty.ome.zarr: OME-Zarr lists no image in its multiscales")
    assert any("cut.tif" in line for line in p.stderr.splitlines() if line.startswith("  "))
    assert outputs_complete(out, "good")
    assert not any(out.glob("cut.*")) and not any(out.glob("empty.*"))


# ------------------------------------------------------------ silently wrong


def test_constant_image_has_no_cells(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "flat.tif", np.full((256, 256), 1000, np.uint16))
    out = tmp_path / "out"
    assert run(["segment", str(tmp_path / "flat.tif"), "-o", str(out), "-m", "nuclei", "--device", "cpu"]) == 0
    assert tifffile.imread(out / "flat.tif").max() == 0
    assert json.loads((out / "flat.lociseg.json").read_text())["cells"] == 0


def test_ome_zarr_with_every_chunk_missing_is_an_error_not_zeros(tmp_path, capsys):
    pytest.importorskip("zarr")
    from lociseg.export.formats import write_ome_zarr

    path = write_ome_zarr(tmp_path / "img.ome.zarr", np.zeros((64, 64), np.int32), image=_blobs())
    for level in sorted(path.glob("[0-9]*")):
        for chunk in level.iterdir():
            if not chunk.name.startswith("."):
                chunk.unlink()
    out = tmp_path / "out"
    rc = run(["segment", str(path), "-o", str(out), "-m", "nuclei", "-d", "20", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    one_line(err, "stores no chunks")
    assert not any(out.glob("img*"))


def test_tile_at_the_models_cell_cap_warns(monkeypatch):
    from lociseg.errors import ResultWarning
    from lociseg.predict.api import load_model

    seg = load_model("nuclei", device="cpu")
    monkeypatch.setattr(seg.model.config.lpn, "max_count", 2)
    with pytest.warns(ResultWarning, match="lpn.max_count"):
        seg.segment(_blobs(), diameter=16)
    monkeypatch.setattr(seg.model.config.lpn, "max_count", 4000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultWarning)
        seg.segment(_blobs(), diameter=16)


def test_export_refuses_an_intensity_image_as_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw = (1000 + 50 * rng.standard_normal((256, 256)) + 2000 * (np.tile(_blobs(), (4, 4)) > 100)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "raw.tif", raw)
    out = tmp_path / "out"
    rc = run(["export", str(tmp_path / "raw.tif"), "--format", "geojson", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    one_line(err, "looks like an intensity image, not labels")
    assert not any(out.glob("raw*"))


def test_export_real_labels_are_not_mistaken_for_an_image(tmp_path):
    from lociseg.io.labels import refuse_intensity_image

    labels = np.zeros((200, 200), np.int32)
    k = 0
    for y in range(0, 200, 6):
        for x in range(0, 200, 6):
            k += 1
            labels[y : y + 5, x : x + 5] = k  # 1,156 small touching-free cells: many values, neighbours agree
    refuse_intensity_image(labels)


def test_export_qupath_cells_with_nuclei(tmp_path, capsys):
    cells = np.zeros((64, 64), np.int32)
    cells[4:30, 4:30], cells[34:60, 34:60] = 1, 2
    nuclei = np.zeros_like(cells)
    nuclei[12:20, 12:20], nuclei[42:50, 42:50] = 1, 2
    tifffile.imwrite(tmp_path / "f.tif", cells)
    (tmp_path / "nuc").mkdir()
    tifffile.imwrite(tmp_path / "nuc" / "f.tif", nuclei)
    out = tmp_path / "out"
    args = ["export", str(tmp_path / "f.tif"), "-f", "geojson", "-o", str(out), "--object-type", "cell"]
    assert run([*args, "--nuclei", str(tmp_path / "nuc")]) == 0
    feats = json.loads((out / "f.geojson").read_text())["features"]
    assert [f["properties"]["objectType"] for f in feats] == ["cell", "cell"]
    assert all("nucleusGeometry" in f for f in feats)
    shutil.rmtree(out)
    assert run(args) == 2  # a cell object needs its nucleus
    assert "--nuclei" in capsys.readouterr().err


def test_two_uninterrupted_trainings_with_one_thread_are_identical(tmp_path, disk_scenes):
    """What the README says is exact: with ``optim.threads: 1`` the same config gives the same weights."""
    from safetensors.torch import load_file

    from lociseg.train.config import ExperimentConfig
    from lociseg.train.loop import train

    cfg = ExperimentConfig().override(
        {
            "lacss.backbone.preset": "tiny",
            "data.train": [],
            "data.val": [],
            "data.channels": ["0", "1"],
            "data.crop_size": 64,
            "optim.steps": 6,
            "optim.warmup_steps": 2,
            "optim.batch_size": 2,
            "optim.threads": 1,
        }
    )
    weights = []
    for k in range(2):
        train(cfg, tmp_path / f"run{k}", device="cpu", progress=False, train_samples=disk_scenes(n=3, size=64, cells=5))
        weights.append(load_file(str(tmp_path / f"run{k}" / "last" / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert bool((weights[0][key] == weights[1][key]).all()), key

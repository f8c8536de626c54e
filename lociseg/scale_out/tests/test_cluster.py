"""``lociseg segment --cluster local:2`` on small real crops: same outputs as serial, blocks, killed workers and runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[3]
ARGS = ["-m", "cells", "--diameter", "23", "--device", "cpu"]


def _lociseg(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    return subprocess.Popen([sys.executable, "-m", "lociseg", *args], cwd=ROOT, env=env, **out, **kwargs)


def _run(*args) -> str:
    p = _lociseg(*args)
    text, _ = p.communicate(timeout=600)
    assert p.returncode == 0, text
    return text


@pytest.fixture(scope="module")
def images(data_root, tmp_path_factory):
    import tifffile

    from lociseg.data import load_dataset

    ds = load_dataset("bbbc018@test", root=data_root)
    root = tmp_path_factory.mktemp("images")
    crops = root / "crops"
    crops.mkdir()
    for i in range(6):
        img = ds[5 + i // 2].image
        y = 256 * (i % 2)
        tifffile.imwrite(crops / f"crop{i}.tif", img[:, y : y + 256, 128:384], photometric="minisblack")
    big = root / "big"
    big.mkdir()
    field = ds[5].image
    tiled = np.concatenate([field, field[:, ::-1]], axis=1)  # mirror-tiled real field, 768 x 1024
    tiled = np.concatenate([tiled, tiled[:, ::-1]], axis=2)[:, :768, :]
    tifffile.imwrite(big / "big.tif", tiled, photometric="minisblack", tile=(256, 256))
    return crops, big / "big.tif"


def test_many_files_on_two_workers_are_the_serial_outputs(images, tmp_path):
    from lociseg.io import read_labels

    crops, _ = images
    _run("segment", str(crops), "-o", str(tmp_path / "serial"), *ARGS)
    text = _run("segment", str(crops), "-o", str(tmp_path / "cluster"), *ARGS, "--cluster", "local:2")
    assert "6 image(s) segmented" in text
    for i in range(6):
        a = read_labels(tmp_path / "serial" / f"crop{i}.tif")
        b = read_labels(tmp_path / "cluster" / f"crop{i}.tif")
        assert a.max() > 5
        np.testing.assert_array_equal(a, b)
        assert (tmp_path / "serial" / f"crop{i}.csv").read_text() == (tmp_path / "cluster" / f"crop{i}.csv").read_text()
    # a rerun skips every finished image
    text = _run(
        "segment", str(crops), "-o", str(tmp_path / "cluster"), *ARGS, "--cluster", "local:2", "--skip-existing"
    )
    assert "0 image(s) segmented, 6 skipped" in text


def test_large_image_in_blocks_matches_the_single_process_result(images, tmp_path, check_ngff):
    from lociseg.io import read_labels
    from lociseg.metrics import match_instances

    _, big = images
    _run("segment", str(big), "-o", str(tmp_path / "serial"), *ARGS, "--tile-size", "512")
    # a worker killed after the first blocks: its tasks are redone elsewhere, every block written once
    proc = _lociseg(
        "segment",
        str(big),
        "-o",
        str(tmp_path / "blocks"),
        *ARGS,
        "--tile-size",
        "512",
        "--cluster",
        "local:2",
        "--block-size",
        "256",
    )
    _wait_for(".big.blocks/*.scores.npy", tmp_path / "blocks", 1, proc)
    _workers(proc)[0].send_signal(signal.SIGKILL)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text
    ref = read_labels(tmp_path / "serial" / "big.tif")
    store = tmp_path / "blocks" / "big.ome.zarr"
    assert check_ngff(store)["multiscales"][0]["name"] == "big"  # NGFF 0.4 (ome-zarr-models), its own name
    root = zarr.open_group(str(store), mode="r")
    labels = root["labels/cells/0"][:]
    assert labels.shape == ref.shape == (768, 1024)
    assert root["labels/cells"].attrs["image-label"]["source"]["image"] == "../../"
    assert [d["path"] for d in root["labels/cells"].attrs["multiscales"][0]["datasets"]] == ["0", "1"]
    assert root["0"].shape == (2, 768, 1024)
    n = int(labels.max())
    assert n == len(np.unique(labels)) - 1  # ids 1..N, each once
    table = (tmp_path / "blocks" / "big.csv").read_text().splitlines()
    assert len(table) == n + 1
    m = match_instances(ref, labels, thresholds=[0.9])
    # the blocks predict the very tiles of the single-process pass; only cross-block overlaps may differ
    assert m.tp[0] >= 0.99 * max(n, int(ref.max())), (m.tp[0], n, int(ref.max()))
    meta = json.loads((tmp_path / "blocks" / "big.lociseg.json").read_text())
    assert meta["blocks"] == 12 and meta["cells"] == n
    assert not list((tmp_path / "blocks").glob(".*"))  # no scratch or temporary files left
    text = _run(
        "segment",
        str(big),
        "-o",
        str(tmp_path / "blocks"),
        *ARGS,
        "--cluster",
        "local:2",
        "--block-size",
        "256",
        "--skip-existing",
    )
    assert "0 image(s) segmented, 1 skipped" in text


def _workers(proc: subprocess.Popen) -> list[psutil.Process]:
    """The dask worker processes of a lociseg run (spawned by the nannies in the run's process)."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    return [p for p in tree if "spawn_main" in " ".join(p.cmdline())]


def _wait_for(path_glob, folder: Path, n: int, proc, timeout=300) -> None:
    t0 = time.time()
    while len(list(folder.glob(path_glob))) < n:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() - t0 < timeout
        time.sleep(0.2)


def test_killed_worker_every_image_written_once(images, tmp_path):
    crops, _ = images
    out = tmp_path / "out"
    proc = _lociseg("segment", str(crops), "-o", str(out), *ARGS, "--cluster", "local:2")
    _wait_for("*.lociseg.json", out, 1, proc)
    workers = _workers(proc)
    assert len(workers) >= 2, [p.cmdline() for p in workers]
    workers[0].send_signal(signal.SIGKILL)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text
    assert "6 image(s) segmented, 0 skipped, 0 failed" in text
    from lociseg.predict.outputs import outputs_complete

    assert all(outputs_complete(out, f"crop{i}") for i in range(6))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"crop{i}{e}" for i in range(6) for e in (".tif", ".csv", ".lociseg.json")
    )


def test_killed_run_rerun_does_not_redo_finished_images(images, tmp_path):
    crops, _ = images
    out = tmp_path / "out"
    proc = _lociseg("segment", str(crops), "-o", str(out), *ARGS, "--cluster", "local:2", start_new_session=True)
    _wait_for("*.lociseg.json", out, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    finished = len(list(out.glob("*.lociseg.json")))
    text = _run("segment", str(crops), "-o", str(out), *ARGS, "--cluster", "local:2", "--skip-existing")
    assert f"{6 - finished} image(s) segmented, {finished} skipped, 0 failed" in text


def test_existing_scheduler_by_address_loads_the_model_once_per_worker(images, tmp_path):
    """``--cluster tcp://HOST:PORT``: a scheduler and workers started elsewhere (here by the test)."""
    from distributed import Client, LocalCluster

    from lociseg.io import read_labels
    from lociseg.scale_out.cluster import loads_on_worker

    crops, _ = images
    _run("segment", str(crops), "-o", str(tmp_path / "serial"), *ARGS)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env={"OMP_NUM_THREADS": "1"}
        ) as cluster,
        Client(cluster) as client,
    ):
        assert cluster.scheduler_address.startswith("tcp://")
        text = _run("segment", str(crops), "-o", str(tmp_path / "out"), *ARGS, "--cluster", cluster.scheduler_address)
        assert "6 image(s) segmented" in text
        # the workers outlive the command: each that ran a task holds one cached model, whatever its task count
        loads = client.run(loads_on_worker)
        assert sum(loads.values()) >= 1 and set(loads.values()) <= {0, 1}, loads
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert sum(executed.values()) >= 6 > sum(loads.values()), (executed, loads)
    for i in range(6):
        np.testing.assert_array_equal(
            read_labels(tmp_path / "serial" / f"crop{i}.tif"), read_labels(tmp_path / "out" / f"crop{i}.tif")
        )

"""``lociseg export``: every format from label TIFFs, bad file in the middle, user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from lociseg.cli.main import run
from lociseg.io import write_labels


def _labels(n: int) -> np.ndarray:
    lab = np.zeros((40, 60), np.uint16)
    for k in range(n):
        lab[4 + 12 * (k // 4) : 12 + 12 * (k // 4), 3 + 14 * (k % 4) : 13 + 14 * (k % 4)] = k + 1
    return lab


@pytest.fixture
def seg_dir(tmp_path):
    d = tmp_path / "seg"
    d.mkdir()
    write_labels(d / "a.tif", _labels(3))
    write_labels(d / "b.tif", _labels(6))
    img = tmp_path / "img"
    img.mkdir()
    tifffile.imwrite(img / "a.tif", np.full((2, 40, 60), 7, np.uint8))
    tifffile.imwrite(img / "b.tif", np.full((2, 40, 60), 9, np.uint8))
    return d


def test_all_formats(tmp_path, seg_dir, capsys):
    pytest.importorskip("zarr")
    pytest.importorskip("roifile")
    out = tmp_path / "out"
    rc = run(
        [
            "export",
            str(seg_dir),
            "-f",
            "geojson,csv,coco",
            "-f",
            "imagej-roi",
            "-f",
            "ome-zarr",
            "--images",
            str(tmp_path / "img"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr()
    for stem, n in (("a", 3), ("b", 6)):
        fc = json.loads((out / f"{stem}.geojson").read_text())
        assert len(fc["features"]) == n
        rows = np.genfromtxt(out / f"{stem}.cells.csv", delimiter=",", names=True)
        assert len(rows) == n and np.all(rows["mean_intensity_0"] == (7 if stem == "a" else 9))
        assert (out / f"{stem}.roi.zip").is_file() and (out / f"{stem}.ome.zarr").is_dir()
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 9


def test_bad_file_listed_and_others_written(tmp_path, seg_dir, capsys):
    (seg_dir / "b2.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    rc = run(
        ["export", str(seg_dir / "a.tif"), str(seg_dir / "b2.tif"), str(seg_dir / "b.tif"), "-f", "csv", "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "b2.tif" in err and "1 failure" in err
    assert (out / "a.cells.csv").is_file() and (out / "b.cells.csv").is_file()


def test_missing_matching_image_is_a_failure(tmp_path, seg_dir, capsys):
    (tmp_path / "img" / "b.tif").unlink()
    rc = run(["export", str(seg_dir), "-f", "csv", "--images", str(tmp_path / "img"), "-o", str(tmp_path / "o")])
    assert rc == 1 and "no image named 'b'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["-f", "tiff"], "unknown format 'tiff'"),
        (["-f", "csv", "--pixel-size", "0"], "--pixel-size"),
        (["-f", "geojson", "--object-type", "cell"], "--object-type"),
    ],
)
def test_user_errors_exit_2(tmp_path, seg_dir, capsys, args, message):
    rc = run(["export", str(seg_dir), "-o", str(tmp_path / "o"), *args])
    assert rc == 2 and message in capsys.readouterr().err


def test_images_name_coco_files_and_ome_zarr_channels(tmp_path):
    """With --images, COCO file_name is the raw image and OME-Zarr channels carry its channel names."""
    zarr = pytest.importorskip("zarr")
    seg, img, out = tmp_path / "seg", tmp_path / "img", tmp_path / "out"
    seg.mkdir(), img.mkdir()
    write_labels(seg / "a_masks.tif", _labels(3))
    write_labels(seg / "b_masks.tif", _labels(2))
    for stem in ("a", "b"):
        tifffile.imwrite(
            img / f"{stem}.ome.tif",
            np.full((2, 40, 60), 5, np.uint16),
            ome=True,
            metadata={"axes": "CYX", "Channel": {"Name": ["actin", "DNA"]}},
        )
    rc = run(["export", str(seg), "-f", "coco,ome-zarr,geojson", "--images", str(img), "-o", str(out)])
    assert rc == 0
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.ome.tif", "b.ome.tif"]
    assert "counts" in coco["annotations"][0]["segmentation"]  # RLE, not polygons
    omero = zarr.open_group(str(out / "a_masks.ome.zarr"), mode="r").attrs["omero"]
    assert [c["label"] for c in omero["channels"]] == ["actin", "DNA"]
    ids = [
        f["id"]
        for stem in ("a_masks", "b_masks")
        for f in json.loads((out / f"{stem}.geojson").read_text())["features"]
    ]
    assert len(set(ids)) == len(ids) == 5  # one QuPath project can hold both images' objects

"""Each export format is read back with the library that owns the format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.draw import polygon as draw_polygon

from lociseg.errors import ConfigError, InputError
from lociseg.export import formats as F
from lociseg.io.polygons import label_outlines, mask_outlines, polygon_area

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


@pytest.fixture(scope="module")
def bbbc_cells(data_root):
    """Real touching cells (BBBC018 hand outlines, filled) of one field."""
    from lociseg.data import bbbc018_labels

    return bbbc018_labels(data_root / "bbbc018", "00733", "cells")


def _raster(ring: np.ndarray, shape) -> np.ndarray:
    m = np.zeros(shape, bool)
    # pixel (r, c) is inside when its centre (c + .5, r + .5) is: shift the ring instead
    rr, cc = draw_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
    m[rr, cc] = True
    return m


def test_noise_masks_give_valid_polygons_with_exact_area(rng):
    pytest.importorskip("shapely", reason="shapely not installed")
    from shapely.geometry import Polygon
    from shapely.validation import explain_validity

    for _ in range(20):
        m = rng.random((24, 24)) < 0.55  # many corner contacts, pockets and holes
        pieces = mask_outlines(m)
        assert sum(p.area for p in pieces) == m.sum()
        for p in pieces:
            poly = Polygon(p.exterior, p.holes)
            assert poly.is_valid, explain_validity(poly)
            assert poly.area == p.area


def test_outline_of_square_with_hole_and_diagonal_piece():
    m = np.zeros((7, 7), bool)
    m[1:5, 1:5] = True
    m[2, 2] = False  # hole
    m[5, 5] = True  # touches the square only at a corner: separate piece
    pieces = mask_outlines(m)
    assert len(pieces) == 2
    big, small = pieces
    assert big.area == 15 and len(big.holes) == 1 and small.area == 1
    assert polygon_area(big.exterior) > 0 > polygon_area(big.holes[0])
    np.testing.assert_array_equal(sorted(map(tuple, small.exterior)), [(5, 5), (5, 6), (6, 5), (6, 6)])


@pytest.mark.parametrize("simple", [True, False])
def test_outlines_rasterise_back_exactly(bbbc_cells, simple):
    outlines = label_outlines(bbbc_cells, simple=simple)
    assert len(outlines) == len(np.unique(bbbc_cells)) - 1
    for lab in list(outlines)[:: 3 if simple else 10]:
        want = bbbc_cells == lab
        got = np.zeros_like(want)
        for p in outlines[lab]:
            got |= _raster(p.exterior, want.shape)
            for h in p.holes:
                got &= ~_raster(h, want.shape)
        np.testing.assert_array_equal(got, want, err_msg=f"cell {lab}")


def test_geojson_shapely_areas_match_pixel_counts(tmp_path, bbbc_cells):
    shapely = pytest.importorskip("shapely", reason="shapely not installed (pip install 'lociseg[export]')")
    from shapely.geometry import shape

    path = F.export_labels(bbbc_cells, tmp_path, "field", "geojson")
    fc = json.loads(path.read_text())
    assert fc["type"] == "FeatureCollection"
    areas = np.bincount(bbbc_cells.ravel())
    labs = []
    for feat in fc["features"]:
        props = feat["properties"]
        assert props["objectType"] == "detection" and props["classification"]["name"] == "cell"
        geom = shape(feat["geometry"])
        assert geom.is_valid, props["label"]
        assert geom.area == pytest.approx(areas[props["label"]])
        assert props["measurements"]["area"] == areas[props["label"]]
        labs.append(props["label"])
    assert sorted(labs) == list(np.flatnonzero(areas[1:]) + 1)
    assert shapely.__version__


def test_geojson_cell_objects_need_and_store_nuclei():
    cells = np.zeros((20, 20), np.int32)
    cells[2:12, 2:12] = 1
    nuclei = np.zeros_like(cells)
    nuclei[5:8, 5:8] = 1
    with pytest.raises(ConfigError, match="nucleus"):
        F.labels_to_geojson(cells, object_type="cell")
    fc = F.labels_to_geojson(cells, object_type="cell", nuclei=nuclei)
    feature = fc["features"][0]
    # QuPath reads nucleusGeometry beside geometry (a Feature member), not from properties
    assert "nucleusGeometry" not in feature["properties"]
    ring = np.array(feature["nucleusGeometry"]["coordinates"][0])
    assert feature["properties"]["objectType"] == "cell" and polygon_area(ring[:-1]) == 9


def test_geojson_ids_are_uuids_unique_across_images():
    import uuid

    cells = np.zeros((20, 20), np.int32)
    cells[2:6, 2:6], cells[10:14, 10:14] = 1, 2
    ids = [[f["id"] for f in F.labels_to_geojson(cells, image_name=n)["features"]] for n in ("a", "b", "a")]
    assert ids[0] == ids[2]  # the same export gives the same ids
    assert len(set(ids[0] + ids[1])) == 4
    assert all(str(uuid.UUID(i)) == i for i in ids[0])  # QuPath parses the id as a UUID


def test_imagej_rois_read_back_with_roifile(tmp_path, bbbc_cells):
    roifile = pytest.importorskip("roifile", reason="roifile not installed (pip install 'lociseg[export]')")
    path = F.export_labels(bbbc_cells, tmp_path, "field", "imagej-roi")
    rois = roifile.roiread(path)
    outlines = label_outlines(bbbc_cells, simple=False)
    assert len(rois) == sum(len(v) for v in outlines.values())
    by_name = {r.name: r for r in rois}
    for lab in list(outlines)[::7]:
        roi = by_name[f"cell-{lab}"]
        assert roi.roitype == roifile.ROI_TYPE.TRACED
        np.testing.assert_array_equal(roi.coordinates(), outlines[lab][0].exterior)
        assert abs(polygon_area(roi.coordinates().astype(float))) == outlines[lab][0].area
    # writing again is refused without overwrite, and then replaces the zip instead of appending to it
    with pytest.raises(InputError, match="exists already"):
        F.export_labels(bbbc_cells, tmp_path, "field", "imagej-roi")
    F.export_labels(bbbc_cells, tmp_path, "field", "imagej-roi", overwrite=True)
    assert len(roifile.roiread(path)) == len(rois)


def test_ome_zarr_metadata_and_pixels(tmp_path, bbbc_cells, check_ngff):
    zarr = pytest.importorskip("zarr", reason="zarr not installed (pip install 'lociseg[export]')")
    image = np.stack([bbbc_cells.astype(np.uint16) * 3, np.ones_like(bbbc_cells, np.uint16)])
    path = F.write_ome_zarr(tmp_path / "f.ome.zarr", bbbc_cells, image=image, pixel_size=0.65, min_level_size=128)
    attrs = check_ngff(path)  # NGFF 0.4 as ome-zarr-models reads it
    assert attrs["multiscales"][0]["name"] == "f"
    assert all({"color", "window"} <= set(c) for c in attrs["omero"]["channels"])
    via_export = F.export_labels(bbbc_cells, tmp_path / "e", "field", "ome-zarr", image=image)
    assert check_ngff(via_export)["multiscales"][0]["name"] == "field"  # not the temporary folder's name
    check_ngff(F.write_ome_zarr(tmp_path / "p.ome.zarr", bbbc_cells))  # placeholder image
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["multiscales"][0]["axes"][0] == {"name": "c", "type": "channel"}
    assert root["labels"].attrs["labels"] == ["cells"]
    g = root["labels/cells"]
    il = g.attrs["image-label"]
    assert il["version"] == "0.4" and il["source"] == {"image": "../../"}
    assert {c["label-value"] for c in il["colors"]} == set(range(1, int(bbbc_cells.max()) + 1))
    ms = g.attrs["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]  # 512 -> 256 -> 128
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.3, 1.3]
    np.testing.assert_array_equal(g["0"][:], bbbc_cells)
    np.testing.assert_array_equal(g["1"][:], bbbc_cells[::2, ::2])
    np.testing.assert_array_equal(root["0"][:], image)


def test_ome_zarr_reads_with_ome_zarr_package(tmp_path, bbbc_cells):
    pytest.importorskip("ome_zarr", reason="ome-zarr not installed (pip install ome-zarr)")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    path = F.write_ome_zarr(tmp_path / "f.ome.zarr", bbbc_cells)
    nodes = list(Reader(parse_url(str(path)))())
    label_nodes = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert label_nodes, [n.specs for n in nodes]
    np.testing.assert_array_equal(np.asarray(label_nodes[0].data[0]), bbbc_cells)
    assert nodes[0].metadata["channel_names"] == ["no image"]
    # channel names are what napari-ome-zarr names the image layers (else "<file> [0]", "<file> [1]")
    image = np.stack([bbbc_cells.astype(np.uint16), (bbbc_cells > 0).astype(np.uint16) * 100])
    path = F.write_ome_zarr(tmp_path / "g.ome.zarr", bbbc_cells, image=image, channel_names=["actin", "DNA"])
    meta = next(iter(Reader(parse_url(str(path)))())).metadata
    assert meta["channel_names"] == ["actin", "DNA"] and meta["contrast_limits"][1][1] == 100
    with pytest.raises(ValueError, match="1 channel names for 2"):
        F.write_ome_zarr(tmp_path / "h.ome.zarr", bbbc_cells, image=image, channel_names=["actin"])


def test_coco_reads_back_with_pycocotools(tmp_path, bbbc_cells):
    from pycocotools.coco import COCO

    path = F.export_labels(bbbc_cells, tmp_path, "field", "coco")
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == len(np.unique(bbbc_cells)) - 1
    rebuilt = np.zeros_like(bbbc_cells)
    for _k, a in enumerate(anns, start=1):
        m = coco.annToMask(a).astype(bool)
        assert m.sum() == a["area"]
        rebuilt[m] = bbbc_cells[m][0]
    np.testing.assert_array_equal(rebuilt, bbbc_cells)


def test_csv_columns_and_intensity(tmp_path):
    labels = np.zeros((10, 12), np.int32)
    labels[1:4, 1:5] = 1
    labels[6:9, 6:9] = 3  # label 2 absent: not a row
    image = np.zeros((2, 10, 12))
    image[0][labels == 1] = 2.0
    image[1][labels == 3] = 5.0
    path = F.export_labels(labels, tmp_path, "x", "csv", image=image)
    rows = np.genfromtxt(path, delimiter=",", names=True)
    np.testing.assert_array_equal(rows["label"], [1, 3])
    np.testing.assert_array_equal(rows["area"], [12, 9])
    np.testing.assert_allclose(rows["centroid_y"], [2, 7])
    np.testing.assert_allclose(rows["mean_intensity_0"], [2, 0])
    np.testing.assert_allclose(rows["mean_intensity_1"], [0, 5])


def test_unknown_format_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown format"):
        F.export_labels(np.zeros((4, 4), int), tmp_path, "x", "tiff")


def test_empty_labels_every_format(tmp_path):
    labels = np.zeros((16, 16), np.uint16)
    for fmt in F.FORMATS:
        try:
            p = F.export_labels(labels, tmp_path, "empty", fmt)
        except ConfigError as e:  # optional package missing
            assert "pip install" in str(e)
            continue
        assert p.exists(), fmt

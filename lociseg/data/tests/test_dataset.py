"""load_dataset on every shared data set and on user folders / COCO files; splits; summaries."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import tifffile
from PIL import Image

from lociseg.data import (
    DATASETS,
    Sample,
    SegmentationDataset,
    dataset_summary,
    default_data_root,
    load_dataset,
    load_split,
    make_splits,
    parse_spec,
)
from lociseg.errors import ConfigError, InputError
from lociseg.io import labels_to_coco, write_labels

EXPECTED = {
    # spec: (images, channels, dtype, labelled)
    "bbbc018": (56, 2, np.uint16, True),
    "bbbc018:nuclei": (56, 2, np.uint16, True),
    "dsb2018-test": (65, 1, np.uint8, True),
    "dsb2018-train": (20, 1, np.uint8, True),
    "koyuncu": (41, 1, np.uint8, True),
    "aitslab": (26, 2, np.uint8, True),
    "aitslab:nuclei": (26, 2, np.uint8, True),
    "aitslab-nuclei": (50, 1, np.uint8, True),
    "deepcell": (13, 2, np.uint16, True),
    "deepcell:nuclei": (3, 2, np.uint16, True),
    "usiigaci": (16, 1, np.uint16, True),
    "coelho": (24, 1, np.uint8, True),
    "tcells": (7, 2, np.uint8, True),
    "cellprofiler-human": (1, 2, np.uint8, False),
    "cellprofiler-fly": (3, 2, np.uint8, False),
}


@pytest.mark.parametrize("spec", sorted(EXPECTED))
def test_every_dataset_loads_a_sample(data_root, spec):
    n, c, dtype, labelled = EXPECTED[spec]
    ds = load_dataset(spec, root=data_root)
    assert len(ds) == n and len(ds.names) == len(set(ds.names))
    s = ds[0]
    assert isinstance(s, Sample) and s.name == ds.names[0]
    assert s.image.ndim == 3 and s.image.shape[0] == c and s.image.dtype == dtype
    assert len(ds.channel_names) == c and s.meta["channel_names"] == list(ds.channel_names)
    if labelled:
        assert s.labels.shape == s.image.shape[1:] and s.labels.dtype == np.int32 and s.labels.max() > 0
    else:
        assert s.labels is None
    assert spec.split(":")[0] in repr(ds)


def test_all_named_datasets_are_covered():
    assert set(DATASETS) <= {k.split(":")[0] for k in EXPECTED}


def test_channel_selection_by_name(data_root):
    ds = load_dataset("bbbc018", root=data_root, channels=["dna", "pH3", "actin"])
    assert ds.channel_names == ("DNA", "pH3", "actin")
    s = ds["00733"]
    assert s.meta["group"] == "PeripheralActin"
    from lociseg.io import read_image

    np.testing.assert_array_equal(s.image[1], read_image(data_root / "bbbc018/BBBC018_v1_images/00733-pH3.DIB")[0])
    assert load_dataset("koyuncu", root=data_root).channel_names == ("blue",)
    assert load_dataset("cellprofiler-fly", root=data_root, channels=["actin"]).channel_names == ("FITC",)
    with pytest.raises(ConfigError, match="no channel 'tubulin'"):
        load_dataset("bbbc018", root=data_root, channels=["tubulin"])


def test_dsb_colour_images_become_grey(data_root):
    ds = load_dataset("dsb2018-test", root=data_root)
    colour = [s for s in (ds[i] for i in range(len(ds))) if s.meta["colour"]]
    assert colour, "the DSB test set has some H&E / brightfield colour images"
    assert all(s.image.shape[0] == 1 for s in colour)
    rgb = load_dataset("dsb2018-test", root=data_root, channels=["red", "green", "blue"])
    assert rgb[0].image.shape[0] == 3


def test_nuclei_name_picks_the_nuclear_channel_of_every_nucleus_set(data_root):
    """``data.channels: [nuclei]`` (the nuclei config) selects each set's nuclear stain, never a colour plane."""
    expected = {
        "dsb2018-train": ("grey",),
        "koyuncu": ("blue",),
        "aitslab-nuclei": ("nucleus",),
        "aitslab:nuclei": ("nucleus",),
        "bbbc018:nuclei": ("DNA",),
    }
    for spec, names in expected.items():
        assert load_dataset(spec, root=data_root, channels=["nuclei"]).channel_names == names, spec
    grey = load_dataset("dsb2018-test", root=data_root, channels="nuclei")
    assert np.array_equal(grey[0].image, load_dataset("dsb2018-test", root=data_root)[0].image)


def test_spec_shorthand_and_splits(data_root):
    assert parse_spec("bbbc018:nuclei@val") == ("bbbc018", "nuclei", "val")
    assert parse_spec("/x/my@data:set") == ("/x/my@data:set", None, None)
    ds = load_dataset("bbbc018:nuclei@val", root=data_root)
    assert ds.name == "bbbc018:nuclei@val" and len(ds) == 14
    assert ds.names == load_split("bbbc018")["val"]
    assert len(load_dataset("koyuncu", split="test", root=data_root)) == 27
    with pytest.raises(ConfigError, match="split must be"):
        load_dataset("koyuncu", split="training", root=data_root)
    with pytest.raises(ConfigError, match="no train/val/test split"):
        load_dataset("cellprofiler-fly", split="test", root=data_root)


def test_spec_selects_samples_by_name(data_root, tmp_path, rng):
    assert parse_spec("bbbc018:nuclei@val#a,b") == ("bbbc018", "nuclei", "val")
    val = load_split("bbbc018")["val"]
    ds = load_dataset(f"bbbc018@val#{val[3]},{val[0]}", root=data_root)
    assert ds.names == [val[3], val[0]] and ds.name == f"bbbc018:cells@val#{val[3]},{val[0]}"
    assert ds[0].labels.max() > 0
    with pytest.raises(InputError, match="unknown sample"):
        load_dataset(f"bbbc018@test#{val[0]}", root=data_root)  # a val field is not in test
    with pytest.raises(ConfigError, match="no sample names"):
        load_dataset("bbbc018@val#", root=data_root)
    with pytest.raises(ConfigError, match="named twice"):
        load_dataset(f"bbbc018@val#{val[0]},{val[0]}", root=data_root)
    _write_folder(tmp_path / "d", rng, mask_suffix="_masks")
    assert load_dataset(f"{tmp_path / 'd'}#img2").names == ["img2"]
    odd = tmp_path / "odd#name"  # an existing path keeps its '#'
    _write_folder(odd, rng, mask_suffix="_masks")
    assert load_dataset(odd).names == ["img0", "img1", "img2"]


@pytest.mark.parametrize("name", ["bbbc018", "koyuncu", "dsb2018-test", "dsb2018-train"])
def test_splits_stored_deterministic_and_disjoint(data_root, name):
    stored = load_split(name)
    assert stored == make_splits(data_root)[name]  # the committed JSON follows the documented rule
    parts = [set(stored[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(set().union(*parts))
    all_names = set(load_dataset(name, root=data_root).names)
    assert set().union(*parts) <= all_names


def test_bbbc018_split_stratified_by_group(data_root):
    from lociseg.data import bbbc018_group

    split = load_split("bbbc018")
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (27, 14, 14)
    assert "10779" not in set().union(*map(set, split.values()))
    for part in ("val", "test"):
        assert len({bbbc018_group(n) for n in split[part]}) == 14


def test_koyuncu_split_follows_source_readme():
    split = load_split("koyuncu")
    assert split["test"][:3] == ["2", "4", "5"] and len(split["test"]) == 27
    assert {"8", "9", "10", "22"} <= set(split["train"])
    assert split["val"] == ["23", "39"]


def test_dataset_pickles_and_subsets(data_root):
    ds = load_dataset("koyuncu", root=data_root)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.names == ds.names
    sub = ds.subset(["3", "1"])
    assert sub.names == ["3", "1"] and sub["1"].name == "1"
    with pytest.raises(InputError, match="unknown sample"):
        ds.subset(["999"])


def test_default_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCISEG_DATA", str(tmp_path))
    assert default_data_root() == tmp_path


def _write_folder(root, rng, n=3, mask_suffix=""):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = rng.integers(0, 4000, (2, 32, 40), dtype=np.uint16)
        tifffile.imwrite(root / "images" / f"img{i}.tif", img, photometric="minisblack", metadata={"axes": "CYX"})
        labels = np.zeros((32, 40), np.int32)
        labels[4:10, 4:10] = 1
        labels[20:30, 10:25] = 2
        if i < n - 1:  # last image unlabelled
            write_labels(root / "masks" / f"img{i}{mask_suffix}.tif", labels)


def test_generic_folder_layout(tmp_path, rng):
    _write_folder(tmp_path / "d", rng, mask_suffix="_masks")
    ann = tmp_path / "d" / "annotations"
    ann.mkdir()
    (ann / "img0.points.csv").write_text("y,x\n7.0,7.0\n25.5,17.0\n")
    tifffile.imwrite(ann / "img0.foreground.tif", np.ones((32, 40), np.uint8))
    ds = load_dataset(tmp_path / "d")
    assert ds.names == ["img0", "img1", "img2"] and ds.channel_names == ("c0", "c1")
    s = ds["img0"]
    assert s.image.shape == (2, 32, 40) and s.labels.max() == 2
    assert s.points.shape == (2, 2) and s.points.dtype == np.float32 and s.foreground.all()
    assert ds["img2"].labels is None
    assert load_dataset(tmp_path / "d", channels=[1])[0].image.shape == (1, 32, 40)
    summary = dataset_summary(ds, progress=False)
    assert summary["labelled"] == 2 and summary["objects"]["total"] == 4
    assert summary["area"]["min"] == 36 and summary["area"]["max"] == 150
    assert summary["points"] == 2
    assert summary["constant_images"] == [] and summary["failed"] == {}


def test_cellpose_and_images_only_folders(tmp_path, rng):
    cp = tmp_path / "cp"
    cp.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(cp / f"{i:03d}_img.png")
        write_labels(cp / f"{i:03d}_masks.png", np.eye(16, dtype=np.int32))
    ds = load_dataset(cp)
    assert ds.names == ["000", "001"] and ds[1].labels.sum() == 16
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain / "a.jpg")
    ds = load_dataset(plain)
    assert ds.names == ["a"] and ds[0].labels is None and ds[0].image.shape == (3, 8, 8)


def test_coco_json_dataset(tmp_path, rng):
    labels = np.zeros((24, 30), np.int32)
    labels[2:8, 3:12] = 1
    labels[10:20, 15:28] = 2
    (tmp_path / "images").mkdir()
    Image.fromarray(rng.integers(0, 255, (24, 30), dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    coco = labels_to_coco({"a.png": labels}, encoding="rle")
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "ann.json")
    assert ds.names == ["a.png"]
    np.testing.assert_array_equal(ds[0].labels, labels)
    pickle.loads(pickle.dumps(ds))


def test_label_shape_mismatch_names_the_file(tmp_path, rng):
    _write_folder(tmp_path / "d", rng)
    write_labels(tmp_path / "d" / "masks" / "img1.tif", np.zeros((31, 40), np.int32))
    ds = load_dataset(tmp_path / "d")
    with pytest.raises(InputError, match=r"label shape \(31, 40\) differs from image shape \(32, 40\)") as exc:
        ds["img1"]
    assert "img1.tif" in str(exc.value)


def test_bad_specs(tmp_path):
    with pytest.raises(InputError, match="unknown data set"):
        load_dataset(tmp_path / "nothing_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_dataset(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="only applies to bbbc018"):
        load_dataset("koyuncu:nuclei", root=tmp_path)
    with pytest.raises(InputError, match="not found under the data root"):
        load_dataset("koyuncu", root=tmp_path)


def test_sample_checks_shapes():
    with pytest.raises(InputError, match="differs"):
        Sample(image=np.zeros((1, 4, 4)), labels=np.zeros((4, 5), np.int32))
    with pytest.raises(InputError, match="must be"):
        Sample(image=np.zeros((4, 4)))
    assert Sample(image=np.zeros((1, 4, 4)), points=[[1, 2]]).points.dtype == np.float32
    empty = SegmentationDataset("x", [], lambda n: None)
    assert len(empty) == 0 and empty.names == [] and list(empty) == []
    with pytest.raises(ValueError, match="not unique"):
        SegmentationDataset("x", ["a", "b", "a"], lambda n: None)


@pytest.mark.parametrize(
    "spec,name",
    [("koyuncu", "8"), ("dsb2018-train", "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9")],
)
def test_labels_align_with_nuclear_signal(data_root, spec, name):
    s = load_dataset(spec, root=data_root)[name]
    x = s.image[0].astype(float)
    # the nuclear stain is bright inside the labelled nuclei (fluorescence images)
    assert x[s.labels > 0].mean() > 3 * x[s.labels == 0].mean()
    if spec == "koyuncu":
        assert s.labels.max() == 278 and s.meta["group"] == "HepG2"

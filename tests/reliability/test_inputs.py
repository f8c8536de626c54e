"""Bad input and bad options: every one is refused with exit status 2 and one line naming the problem.

Each row of :data:`CASES` runs the ``lociseg`` command (in-process, through
:func:`lociseg.cli.main.run`) in a folder of tiny test files, and checks the
exit status, that the output is one line without a traceback which names the
option or the file's problem, and that no file in the folder changed. The
checks all happen before any model runs, so each case takes well under a
second (the ``--diameter 1e9`` case loads a shipped model, a few seconds).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from lociseg.cli.main import run


def _make_world(t) -> None:
    """Tiny inputs, good and bad, in folder ``t``."""
    rng = np.random.default_rng(0)
    tifffile.imwrite(t / "img.tif", (rng.random((64, 64)) * 1000).astype(np.uint16))
    lab = np.zeros((64, 64), np.uint16)
    lab[10:20, 10:20] = 1
    lab[30:40, 30:50] = 2
    tifffile.imwrite(t / "lab.tif", lab)
    tifffile.imwrite(t / "lab48.tif", lab[:48])
    # a 3-plane uint16 stack is not a colour-coded label image
    tifffile.imwrite(t / "stack3.tif", rng.integers(0, 1000, (3, 64, 64)).astype(np.uint16))
    np.save(t / "frac.npy", lab.astype(np.float32) * 0.5)
    np.save(t / "neg.npy", lab.astype(np.int32) - 1)
    np.save(t / "four_d.npy", np.zeros((2, 2, 8, 8), np.uint8))
    # tifffile's own shaped metadata names unknown axes Q: QQQYX
    tifffile.imwrite(t / "five.tif", rng.integers(0, 100, (2, 2, 2, 64, 64)).astype(np.uint16))
    tifffile.imwrite(t / "six.tif", rng.integers(0, 100, (2, 2, 2, 2, 16, 16)).astype(np.uint8))
    (t / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(200)))
    os.symlink("loop_b.tif", t / "loop_a.tif")
    os.symlink("loop_a.tif", t / "loop_b.tif")
    os.symlink("gone.tif", t / "dangling.tif")
    coco = {
        "images": [{"id": 1, "file_name": "img.tif", "height": 64, "width": 64}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    variants = {
        "coco_no_file_name.json": {**coco, "images": [{"id": 1, "height": 64, "width": 64}]},
        "coco_images_dict.json": {**coco, "images": {"id": 1}},
        "coco_bad_height.json": {**coco, "images": [{**coco["images"][0], "height": "64"}]},
        "coco_ann_no_image.json": {**coco, "annotations": [{"id": 1, "segmentation": []}]},
    }
    for name, data in variants.items():
        (t / name).write_text(json.dumps(data))
    (t / "bad.yaml").write_text("optim: {steps: [1,\n")
    (t / "list.yaml").write_text("- 1\n- 2\n")
    (t / "neg_lr.yaml").write_text("optim:\n  lr: -1\n")
    (t / "file.txt").write_text("not a folder\n")
    (t / "folder").mkdir()
    (t / "out").mkdir()


#: (id, arguments with {t} for the folder, text the one line must contain)
CASES = [
    # train: the experiment config and its overrides
    ("set-bad-yaml", ["train", "--set", "optim.steps=[1,", "--print-config"], "--set optim.steps"),
    ("set-no-equals", ["train", "--set", "optim.steps", "--print-config"], "KEY=VALUE"),
    ("set-unknown-key", ["train", "--set", "optim.no_such=1", "--print-config"], "optim.no_such"),
    ("lr-negative", ["train", "--set", "optim.lr=-1", "--print-config"], "optim.lr must be > 0"),
    ("lr-nan", ["train", "--set", "optim.lr=.nan", "--print-config"], "optim.lr"),
    ("lr-text", ["train", "--set", "optim.lr=fast", "--print-config"], "optim.lr"),
    ("batch-size-0", ["train", "--set", "optim.batch_size=0", "--print-config"], "optim.batch_size must be >= 1"),
    ("steps-negative", ["train", "--set", "optim.steps=-3", "--print-config"], "optim.steps must be >= 1"),
    ("steps-float", ["train", "--set", "optim.steps=2.5", "--print-config"], "optim.steps"),
    ("seed-negative", ["train", "--set", "optim.seed=-1", "--print-config"], "optim.seed"),
    ("workers-negative", ["train", "--set", "optim.workers=-2", "--print-config"], "optim.workers"),
    ("amp-not-bool", ["train", "--set", "optim.amp=maybe", "--print-config"], "optim.amp"),
    ("crop-size-7", ["train", "--set", "data.crop_size=7", "--print-config"], "data.crop_size"),
    ("crop-size-100", ["train", "--set", "data.crop_size=100", "--print-config"], "multiple of 32"),
    ("scale-range-empty", ["train", "--set", "data.augment.scale_min=2", "--print-config"], "data.augment.scale_min"),
    ("min-score-above-1", ["train", "--set", "lacss.lpn.min_score=1.5", "--print-config"], "lacss.lpn.min_score"),
    (
        "threshold-below-0",
        ["train", "--set", "unet.interior_threshold=-0.1", "--print-config"],
        "unet.interior_threshold",
    ),
    ("percentiles-reversed", ["train", "--set", "lacss.input.normalize_low=99.9", "--print-config"], "normalize_low"),
    ("drop-path-1", ["train", "--set", "lacss.backbone.drop_path=1", "--print-config"], "lacss.backbone.drop_path"),
    ("model-type-unknown", ["train", "--set", "model_type=resnet", "--print-config"], "model_type"),
    ("config-is-folder", ["train", "-c", "{t}/folder", "--print-config"], "--config"),
    ("config-missing", ["train", "-c", "{t}/missing.yaml", "--print-config"], "--config"),
    ("config-bad-yaml", ["train", "-c", "{t}/bad.yaml", "--print-config"], "not valid YAML"),
    ("config-not-mapping", ["train", "-c", "{t}/list.yaml", "--print-config"], "YAML mapping"),
    ("config-field-range", ["train", "-c", "{t}/neg_lr.yaml", "--print-config"], "optim.lr must be > 0"),
    ("train-out-is-file", ["train", "-o", "{t}/file.txt"], "--out must be a folder"),
    # segment: options checked before any image is read
    ("tile-size-0", ["segment", "{t}/img.tif", "-o", "{t}/out", "--tile-size", "0"], "--tile-size"),
    ("tile-size-7", ["segment", "{t}/img.tif", "-o", "{t}/out", "--tile-size", "7"], "--tile-size"),
    ("tile-size-negative", ["segment", "{t}/img.tif", "-o", "{t}/out", "--tile-size", "-512"], "--tile-size"),
    ("tile-size-not-32", ["segment", "{t}/img.tif", "-o", "{t}/out", "--tile-size", "300"], "multiple of 32"),
    ("diameter-nan", ["segment", "{t}/img.tif", "-o", "{t}/out", "-d", "nan"], "--diameter"),
    ("diameter-negative", ["segment", "{t}/img.tif", "-o", "{t}/out", "-d", "-5"], "--diameter"),
    ("diameter-text", ["segment", "{t}/img.tif", "-o", "{t}/out", "-d", "big"], "--diameter"),
    (
        "diameter-1e9",
        ["segment", "{t}/img.tif", "-o", "{t}/out", "-d", "1e9"],
        "diameter must be at most the image size",
    ),
    ("overlaps-unknown", ["segment", "{t}/img.tif", "-o", "{t}/out", "--overlaps", "max"], "--overlaps"),
    (
        "skip-and-overwrite",
        ["segment", "{t}/img.tif", "-o", "{t}/out", "--skip-existing", "--overwrite"],
        "--skip-existing",
    ),
    ("max-pixels-0", ["segment", "{t}/img.tif", "-o", "{t}/out", "--max-image-pixels", "0"], "--max-image-pixels"),
    ("glob-matches-nothing", ["segment", "{t}/nothing*.tif", "-o", "{t}/out"], "no image files found"),
    ("segment-out-is-file", ["segment", "{t}/img.tif", "-o", "{t}/file.txt"], "output folder"),
    ("export-out-is-file", ["export", "{t}/lab.tif", "-f", "csv", "-o", "{t}/file.txt"], "output folder"),
    ("annotate-out-is-file", ["annotate", "{t}/img.tif", "-o", "{t}/file.txt"], "output folder"),
    # evaluate: options and label images
    (
        "group-by-bad-regex",
        ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/lab.tif", "--group-by", "(["],
        "--group-by",
    ),
    ("evaluate-out-folder", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/lab.tif", "-o", "{t}/folder"], "--out"),
    ("evaluate-out-not-json", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/lab.tif", "-o", "{t}/m.txt"], ".json"),
    ("pred-missing", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/nope.tif"], "--pred"),
    ("labels-3-plane-uint16", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/stack3.tif"], "3 planes of uint16"),
    ("labels-fractional", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/frac.npy"], "non-integer"),
    ("labels-negative", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/neg.npy"], "negative"),
    ("labels-4-d", ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/four_d.npy"], "shape"),
    (
        "labels-shape-mismatch",
        ["evaluate", "--gt", "{t}/lab.tif", "--pred", "{t}/lab48.tif"],
        "differs from ground truth",
    ),
    ("gt-link-loop", ["evaluate", "--gt", "{t}/loop_a.tif", "--pred", "{t}/lab.tif"], "link loop"),
    ("gt-dangling-link", ["evaluate", "--gt", "{t}/dangling.tif", "--pred", "{t}/lab.tif"], "broken symbolic link"),
    # info: image files, COCO files, --json
    ("info-json-folder", ["info", "{t}/img.tif", "--json", "{t}/folder"], "--json"),
    ("info-json-no-suffix", ["info", "{t}/img.tif", "--json", "{t}/f"], "--json"),
    ("info-link-loop", ["info", "{t}/loop_a.tif"], "link loop"),
    ("info-5d-tiff-no-axes", ["info", "{t}/five.tif"], "QQQYX"),
    ("info-6d-tiff-no-axes", ["info", "{t}/six.tif"], "QQQQYX"),
    ("info-garbage-tiff", ["info", "{t}/garbage.tif"], "TIFF"),
    ("coco-no-file-name", ["info", "{t}/coco_no_file_name.json"], "'file_name'"),
    ("coco-images-not-list", ["info", "{t}/coco_images_dict.json"], "must be lists"),
    ("coco-height-text", ["info", "{t}/coco_bad_height.json"], "height and width"),
    ("coco-annotation-no-image", ["info", "{t}/coco_ann_no_image.json"], "'image_id'"),
    # export-model, demo, annotate, export, synth: options checked before any work
    ("export-model-onnx-out-folder", ["export-model", "nuclei", "-f", "onnx", "-o", "{t}/folder"], "--out"),
    ("export-model-bioimageio-out-file", ["export-model", "nuclei", "-f", "bioimageio", "-o", "{t}/file.txt"], "--out"),
    ("export-model-format", ["export-model", "nuclei", "-f", "tflite", "-o", "{t}/m.tflite"], "format"),
    (
        "export-model-test-image",
        ["export-model", "nuclei", "-f", "bioimageio", "-o", "{t}/pkg", "--test-image", "{t}/nope.tif"],
        "--test-image",
    ),
    ("demo-out-file", ["demo", "-o", "{t}/file.txt"], "--out must be a folder"),
    ("demo-per-set-0", ["demo", "-o", "{t}/demo", "--per-set", "0"], "--per-set"),
    ("annotate-diameter-nan", ["annotate", "{t}/img.tif", "-o", "{t}/out", "-d", "nan"], "--diameter"),
    ("annotate-diameter-inf", ["annotate", "{t}/img.tif", "-o", "{t}/out", "-d", "inf"], "--diameter"),
    ("annotate-diameter-0", ["annotate", "{t}/img.tif", "-o", "{t}/out", "-d", "0"], "--diameter"),
    ("export-format", ["export", "{t}/lab.tif", "-f", "svg", "-o", "{t}/out"], "unknown format"),
    (
        "export-pixel-size",
        ["export", "{t}/lab.tif", "-f", "csv", "-o", "{t}/out", "--pixel-size", "-1"],
        "--pixel-size",
    ),
    (
        "export-images-not-folder",
        ["export", "{t}/lab.tif", "-f", "csv", "-o", "{t}/out", "--images", "{t}/img.tif"],
        "--images",
    ),
    ("synth-max-overlap", ["synth", "{t}/folder", "-o", "{t}/out", "--max-overlap", "2"], "--max-overlap"),
    ("synth-confluence", ["synth", "{t}/folder", "-o", "{t}/out", "--confluence", "5"], "--confluence"),
]


def _snapshot(root) -> dict[str, tuple]:
    """Every path under ``root`` with, for files and links, size and modification time."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            is_dir = os.path.isdir(p) and not os.path.islink(p)
            snap[os.path.relpath(p, root)] = None if is_dir else (st.st_size, st.st_mtime_ns)
    return snap


@pytest.mark.parametrize("args, needle", [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_is_refused_in_one_line(tmp_path, capsys, monkeypatch, args, needle):
    _make_world(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative path the command might write to lands in the snapshot
    before = _snapshot(tmp_path)
    status = run([a.format(t=tmp_path) for a in args])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    lines = [line for line in text.splitlines() if line.strip()]
    assert status == 2, text
    assert "Traceback" not in text
    assert len(lines) == 1, text
    assert needle in lines[0], lines[0]
    assert _snapshot(tmp_path) == before


def test_case_count():
    assert len({c[0] for c in CASES}) == len(CASES) >= 60


def test_info_json_of_one_image_is_written(tmp_path, capsys):
    _make_world(tmp_path)
    assert run(["info", str(tmp_path / "img.tif"), "--json", str(tmp_path / "img.json")]) == 0
    facts = json.loads((tmp_path / "img.json").read_text())
    assert facts["shape"] == [1, 64, 64] and facts["dtype"] == "uint16"


def test_colour_coded_rgb8_labels_still_read(tmp_path):
    from lociseg.io import read_labels

    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[2:8, 2:8] = (255, 0, 0)
    rgb[10:20, 10:20] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "lab.png")
    labels = read_labels(tmp_path / "lab.png")
    assert labels.shape == (32, 32) and sorted(np.unique(labels)) == [0, 1, 2]


def test_checkpoint_folder_with_stray_model_pt_loads(tmp_path):
    import shutil

    from lociseg.models.pretrained import resolve_model
    from lociseg.predict.api import load_model

    ck = tmp_path / "ck"
    shutil.copytree(resolve_model("nuclei"), ck)
    (ck / "model.pt").write_bytes(b"not a torch file")
    seg = load_model(ck, device="cpu")
    assert seg.spec.in_channels == 1

"""``lociseg evaluate``: folders, data set specs, score tables, groups, bad and unmatched files."""

from __future__ import annotations

import csv
import json

import numpy as np

from lociseg.cli.main import run
from lociseg.data.evaluate import find_label_files, strip_name
from lociseg.io import write_labels


def _labels(seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    out = np.zeros((40, 40), np.int32)
    for k in range(1, 6):
        y, x = r.integers(0, 32, size=2)
        out[y : y + 8, x : x + 8] = k
    return out


def _write_scores(path, labels, scores):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "area", "score"])
        for lab, s in zip(labels, scores):
            w.writerow([lab, 1, s])


def test_strip_name():
    assert strip_name("a_masks.tif") == "a" == strip_name("a.ome.tif") == strip_name("a_labels.png")
    assert strip_name("x.txt.gz") == "x" and strip_name("_masks.tif") == "_masks"


def test_folders_with_suffixes_scores_and_outputs(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    for i in range(3):
        gt = _labels(i)
        write_labels(gt_dir / f"img{i}_masks.tif", gt)
        np.save(pred_dir / f"img{i}.npy", gt)  # perfect predictions
    _write_scores(pred_dir / "img0.csv", range(1, 6), [0.9, 0.8, 0.7, 0.6, 0.5])
    out = tmp_path / "res" / "metrics.json"
    assert run(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ALL (sum)" in text and "img1" in text and "no score table" in text
    data = json.loads(out.read_text())
    assert data["overall"]["sum"]["f1_50"] == 1.0 and data["overall"]["sum"]["map"] == 1.0
    assert [r["name"] for r in data["images"]] == ["img0", "img1", "img2"]
    assert out.with_suffix(".csv").is_file()


def test_dataset_spec_groups_and_unmatched(data_root, tmp_path, capsys):
    from lociseg.data import load_dataset

    ds = load_dataset("dsb2018-test", root=data_root)
    pred_dir = tmp_path / "pred"
    for i, sub in ((0, "a"), (1, "a"), (2, "b")):
        s = ds[i]
        (pred_dir / sub).mkdir(parents=True, exist_ok=True)
        pred = np.roll(s.labels, 2, axis=1)  # shifted: lower IoU, some misses
        write_labels(pred_dir / sub / f"{s.name}.tif", pred)
    write_labels(pred_dir / "a" / "stray.tif", np.zeros((4, 4), np.int32))
    assert (
        run(
            [
                "evaluate",
                "--gt",
                "dsb2018-test",
                "--root",
                str(data_root),
                "--pred",
                str(pred_dir),
                "-o",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert "[a]" in cap.out and "[b]" in cap.out
    assert "no prediction for 62 image(s)" in cap.err and "no ground truth for 1 image(s): stray" in cap.err
    data = json.loads((tmp_path / "m.json").read_text())
    assert len(data["images"]) == 3 and set(data["groups"]) == {"a", "b"}
    n_gt = sum(len(np.unique(ds[i].labels)) - 1 for i in range(3))
    assert data["overall"]["sum"]["n_gt"] == n_gt
    assert 0 < data["overall"]["sum"]["f1_50"] < 1


def test_bad_file_is_listed_and_others_scored(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    for i in range(3):
        write_labels(gt_dir / f"s{i}.tif", _labels(i))
        write_labels(pred_dir / f"s{i}.tif", _labels(i + 10))
    (pred_dir / "s1.tif").write_bytes(b"not a tiff")
    write_labels(pred_dir / "s2.tif", np.zeros((5, 5), np.int32))
    assert run(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir), "--group-by", "none"]) == 1
    cap = capsys.readouterr()
    assert "2 failure(s)" in cap.err and "s1.tif" in cap.err and "differs from ground truth" in cap.err
    assert "s0" in cap.out


def test_regex_groups_and_bad_score_table(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    for name in ("hela_1", "hela_2", "u2os_1"):
        write_labels(gt_dir / f"{name}.png", _labels(len(name)).astype(np.uint16))
        write_labels(pred_dir / f"{name}.tif", _labels(len(name)))
    assert (
        run(
            [
                "evaluate",
                "--gt",
                str(gt_dir),
                "--pred",
                str(pred_dir),
                "--group-by",
                r"^([a-z0-9]+)_",
                "-o",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    assert set(json.loads((tmp_path / "m.json").read_text())["groups"]) == {"hela", "u2os"}
    (pred_dir / "hela_1.csv").write_text("id,score\n1,0.5\n")
    assert run(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir)]) == 1
    assert "needs columns 'label' and 'score'" in capsys.readouterr().err


def test_nothing_matched_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    write_labels(tmp_path / "gt" / "a.tif", _labels(0))
    write_labels(tmp_path / "pred" / "b.tif", _labels(0))
    assert run(["evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]) == 2
    err = capsys.readouterr().err
    assert "0 matched by name" in err and "Traceback" not in err
    assert run(["evaluate", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred")]) == 2


def test_single_files_and_cellpose_pairs(tmp_path, capsys):
    write_labels(tmp_path / "one_masks.tif", _labels(1))
    write_labels(tmp_path / "other.tif", _labels(1))
    assert run(["evaluate", "--gt", str(tmp_path / "one_masks.tif"), "--pred", str(tmp_path / "other.tif")]) == 0
    assert "1.000" in capsys.readouterr().out
    folder = tmp_path / "cp"
    folder.mkdir()
    np.save(folder / "x_img.npy", np.zeros((40, 40)))
    write_labels(folder / "x_masks.tif", _labels(2))
    assert list(find_label_files(folder)) == ["x"]

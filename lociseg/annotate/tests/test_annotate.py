"""Machine annotations: DoG points and graph-cut foreground on real BBBC018, choice, storage, reports."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from lociseg.annotate import (
    REF_DIAMETER,
    annotation_report,
    choose_foreground,
    detect_points,
    foreground_candidates,
    gt_union,
    partition_foreground,
    propagate_cells,
    read_annotation,
    read_candidates,
    read_cells,
    read_choices,
    weak_from_labels,
    with_annotations,
    write_annotation,
    write_contact_sheet,
)
from lociseg.errors import InputError


@pytest.fixture(scope="module")
def bbbc018_field(data_root):
    from lociseg.data import load_dataset

    # 05622 (AngularCellEdges, train split): touching cells of varied shape.
    cells = load_dataset("bbbc018", root=data_root, channels=["DNA", "actin"])["05622"]
    nuclei = load_dataset("bbbc018:nuclei", root=data_root, channels=["DNA"])["05622"]
    return cells.image, nuclei.labels, cells.labels


def test_dog_points_match_gt_nuclei_on_real_bbbc018(bbbc018_field):
    image, nuclei, _ = bbbc018_field
    pts = detect_points(image[0])
    rep = annotation_report(pts, np.ones(nuclei.shape, bool), gt_nuclei=nuclei)
    # Measured on the train split: precision 0.94, recall 0.93 overall.
    assert rep["point_recall"] > 0.85, rep
    assert rep["point_precision"] > 0.85, rep


def test_graph_cut_foreground_matches_gt_union_on_real_bbbc018(bbbc018_field):
    image, _, cells = bbbc018_field
    pts = detect_points(image[0])
    cands = foreground_candidates(image[1])
    assert cands.shape == (5, *image.shape[1:]) and cands.dtype == bool
    # Candidates shrink as the threshold rises.
    areas = cands.sum(axis=(1, 2))
    assert (np.diff(areas) < 0).all()
    k, scores = choose_foreground(cands, pts)
    gt = gt_union(cells)
    iou = (cands[k] & gt).sum() / (cands[k] | gt).sum()
    assert iou > 0.75, (k, iou)
    assert scores.shape == (5, 4)


def test_detect_points_synthetic_blobs_and_scale(rng):
    img = rng.normal(0, 0.01, (128, 128))
    centres = [(30, 30), (30, 90), (90, 60)]
    yy, xx = np.mgrid[:128, :128]
    for cy, cx in centres:
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2))
    pts = detect_points(img)
    assert len(pts) == 3
    assert np.abs(np.sort(pts, axis=0) - np.sort(np.array(centres, float), axis=0)).max() < 1.5
    # twice as large cells: scaled sigmas still give one point per blob
    big = np.kron(img, np.ones((2, 2)))
    assert len(detect_points(big, diameter=2 * REF_DIAMETER)) == 3
    assert detect_points(np.zeros((32, 32))).shape == (0, 2)
    with pytest.raises(ValueError):
        detect_points(np.zeros((2, 8, 8)))


def test_choose_foreground_prefers_candidate_that_fits_points():
    H = W = 64
    pts = np.array([[16, 16], [16, 48], [48, 16], [48, 48]], float)
    good = np.zeros((H, W), bool)
    for y, x in pts.astype(int):
        good[y - 8 : y + 8, x - 8 : x + 8] = True
    everything = np.ones((H, W), bool)  # background leaks in (far term)
    too_tight = np.zeros((H, W), bool)
    too_tight[12:20, 12:20] = True  # misses 3 of 4 points
    debris = good.copy()
    debris[28:36, 28:36] = True  # a point-less piece (orphan term)
    k, scores = choose_foreground(np.stack([everything, too_tight, debris, good]), pts)
    assert k == 3
    assert scores[1, 1] == pytest.approx(0.25) and scores[2, 3] > 0 and scores[0, 2] > 0


def test_weak_from_labels_point_inside_crescent():
    lab = np.zeros((40, 40), np.int32)
    lab[5:10, 5:10] = 1
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 25, xx - 25)
    lab[(r > 8) & (r < 12) & (xx < 25)] = 2  # half-ring: centroid lies outside
    pts, fg = weak_from_labels(lab)
    assert pts.shape == (2, 2)
    assert np.allclose(pts[0], (7, 7))
    assert lab[int(round(pts[1, 0])), int(round(pts[1, 1]))] == 2
    assert (fg == (lab > 0)).all()


def test_partition_foreground_splits_at_the_midline():
    fg = np.zeros((10, 30), bool)
    fg[2:8, 2:28] = True
    lab = partition_foreground(fg, np.array([[5.0, 8.0], [5.0, 20.0], [50.0, 50.0]]))
    assert set(np.unique(lab)) == {0, 1, 2, 3}  # the far-off point is clipped onto the corner pixel
    assert (lab[fg == 0] == 0).all()
    assert (lab[2:8, 2:14] == 1).all() and (lab[2:8, 15:24] == 2).all()  # tie column 14 goes either way
    assert lab[7, 27] == 3 and lab[2, 25] == 2  # the clipped point at (9, 29) takes the nearest corner
    assert partition_foreground(fg, np.zeros((0, 2))).max() == 0


def test_propagate_cells_follows_a_cytoplasm_edge_not_the_bisector():
    """Nuclei at x = 12 and 36 (bisector x = 24); a bright cytoplasm line at x = 30 is the real border."""
    H, W = 30, 50
    yy, xx = np.mgrid[:H, :W]
    dna = np.zeros((H, W))
    for cx in (12, 36):
        dna[np.hypot(yy - 15, xx - cx) <= 4] = 1.0
    cyto = np.full((H, W), 0.3)
    cyto[:, 30] = 1.0
    fg = np.zeros((H, W), bool)
    fg[3:27, 2:48] = True
    pts = np.array([[15.0, 12.0], [15.0, 36.0]])
    cells = propagate_cells(fg, pts, dna, cyto, erode=0)
    assert set(np.unique(cells)) == {0, 1, 2} and (cells[~fg] == 0).all()
    band = cells[5:25, 25:29]  # between the bisector and the line: the left cell's
    assert (band == 1).mean() > 0.9
    voronoi = propagate_cells(fg, pts, dna, cyto, erode=0, edge_weight=0.0)
    assert (voronoi[5:25, 25:29] == 2).mean() > 0.9  # distance alone: the bisector
    assert cells[15, 12] == 1 and cells[15, 36] == 2  # label k + 1 is points[k]'s cell
    assert propagate_cells(fg, np.zeros((0, 2)), dna, cyto).max() == 0
    with pytest.raises(ValueError, match="shape"):
        propagate_cells(fg, pts, dna[:-1], cyto)


def test_propagate_cells_beats_the_voronoi_split_on_real_bbbc018(bbbc018_field):
    """Same points and graph-cut foreground: cells along nuclei/cytoplasm edges match the GT better."""
    from lociseg.annotate import annotate_image
    from lociseg.metrics import evaluate_image

    image, _, gt_cells = bbbc018_field
    ann = annotate_image(image[0], image[1])
    ours = evaluate_image(gt_cells, ann.cells)
    voronoi = evaluate_image(gt_cells, partition_foreground(ann.foreground, ann.points))
    assert ours["f1_50"] > voronoi["f1_50"] + 0.02
    assert ours["f1_50"] > 0.6
    assert ann.cells.shape == ann.foreground.shape and ann.cells.max() <= len(ann.points)
    # cells=False skips only the split: same points and foreground, no cells
    bare = annotate_image(image[0], image[1], cells=False)
    assert bare.cells is None
    np.testing.assert_array_equal(bare.points, ann.points)
    np.testing.assert_array_equal(bare.foreground, ann.foreground)


def test_annotation_report_values_by_hand():
    gt = np.zeros((10, 10), np.int32)
    gt[0:4, 0:4] = 1
    gt[6:10, 6:10] = 2
    fg = np.zeros((10, 10), bool)
    fg[0:4, 0:8] = True
    pts = np.array([[1, 1], [2, 2], [8, 8], [5, 5]], float)  # duplicate in 1, one hit in 2, one miss
    rep = annotation_report(pts, fg, gt_nuclei=gt, gt_cells=gt)
    assert rep["point_precision"] == pytest.approx(2 / 4) and rep["point_recall"] == 1.0
    assert rep["points_inside"] == pytest.approx(2 / 4)
    # gt union (with the 1-px gap closing) is the two squares: 32 px; fg 32 px; overlap 16
    assert rep["fg_iou"] == pytest.approx(16 / 48)


def test_store_round_trip_and_with_annotations(tmp_path, rng):
    from lociseg.data import Sample

    fg = rng.random((12, 10)) > 0.5
    pts = np.array([[1.5, 2.25], [3, 4]], np.float32)
    cands = rng.random((5, 12, 10)) > 0.5
    cells = rng.integers(0, 70000, (12, 10))  # beyond uint16
    write_annotation(tmp_path, "a/b", pts, fg, {"k": 1}, candidates=cands, cells=cells)
    p, f = read_annotation(tmp_path, "a/b")
    assert np.allclose(p, pts) and (f == fg).all()
    assert (read_cells(tmp_path, "a/b") == cells).all() and read_cells(tmp_path, "a/b").dtype == np.int32
    assert (read_candidates(tmp_path, "a/b") == cands).all()
    write_annotation(tmp_path, "empty", np.zeros((0, 2)), fg)
    assert read_annotation(tmp_path, "empty")[0].shape == (0, 2)
    samples = {"a/b": Sample(np.zeros((2, 12, 10)), name="a/b"), "c": Sample(np.zeros((2, 12, 10)), name="c")}

    class DS(list):
        names = list(samples)

        def __getitem__(self, key):
            return samples[key] if isinstance(key, str) else list.__getitem__(self, key)

    ds = DS(samples.values())
    with pytest.raises(InputError, match="no annotation"):
        with_annotations(ds, tmp_path)
    got = with_annotations(ds, tmp_path, strict=False)
    assert len(got) == 1 and np.allclose(got[0].points, pts) and (got[0].foreground == fg).all()
    assert (got[0].cells == cells).all()
    write_annotation(tmp_path, "c", pts, fg)  # no cells stored (older folders, --from-labels)
    assert read_cells(tmp_path, "c") is None and with_annotations(ds, tmp_path)[1].cells is None
    write_annotation(tmp_path, "a/b", pts, fg)  # re-annotated without cells: the old ones must not linger
    assert read_cells(tmp_path, "a/b") is None
    (tmp_path / "bad.points.csv").write_text("y,x\n1,2,3\n")
    tifffile.imwrite(tmp_path / "bad.foreground.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="points"):
        read_annotation(tmp_path, "bad")


def test_contact_sheet_png(tmp_path, rng):
    from PIL import Image

    img = rng.random((2, 50, 60))
    cands = np.stack([rng.random((50, 60)) > t for t in (0.2, 0.4, 0.6, 0.8, 0.9)])
    path = write_contact_sheet(tmp_path / "s.png", img, cands, np.array([[10, 10]]), chosen=2, auto=1)
    im = np.asarray(Image.open(path))
    assert im.shape == (50, 5 * 60 + 4 * 4, 3)
    assert (im[0, 2 * 64 + 30] == (255, 0, 0)).all()  # red frame on the chosen panel
    cells = np.zeros((50, 60), np.int32)
    cells[10:30, 20:40], cells[10:30, 40:55] = 1, 2
    im = np.asarray(
        Image.open(write_contact_sheet(tmp_path / "c.png", img, cands, np.zeros((0, 2)), chosen=0, cells=cells))
    )
    assert im.shape == (50, 6 * 60 + 5 * 4, 3)  # a sixth panel: the cells
    panel = im[:, 5 * 64 :]
    assert (panel[20, 40] == (255, 0, 255)).all() and (panel[20, 30] != (255, 0, 255)).any()  # border vs inside


def _write_two_channel(path, rng, n=3):
    yy, xx = np.mgrid[:96, :96]
    dna = rng.normal(100, 2, (96, 96))
    actin = rng.normal(100, 2, (96, 96))
    for cy, cx in [(25, 25), (25, 70), (70, 45)][:n]:
        r = np.hypot(yy - cy, xx - cx)
        dna += 2000 * (r < 7)
        actin += 1500 * (r < 15)
    tifffile.imwrite(path, np.stack([dna, actin]).astype(np.uint16))


def test_cli_annotate_files_bad_file_and_kept_choices(tmp_path, rng):
    from lociseg.cli.main import run

    src = tmp_path / "in"
    src.mkdir()
    _write_two_channel(src / "one.tif", rng)
    _write_two_channel(src / "two.tif", rng, n=2)
    (src / "broken.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    rc = run(["annotate", str(src), "--nucleus", "0", "--cytoplasm", "1", "--out", str(out), "--diameter", "30"])
    assert rc == 1  # broken.tif listed, the others done
    pts, fg = read_annotation(out, "one")
    assert len(pts) == 3 and fg.any()
    assert (out / "sheets" / "one.png").is_file() and (out / "report.csv").is_file()
    choices = read_choices(out / "choices.csv")
    assert set(choices) == {"one", "two"}
    # A person overrides the choice for 'one'; the re-run keeps it.
    text = (out / "choices.csv").read_text().splitlines()
    row = text[1].split(",")
    auto = int(row[2])
    row[1] = str(4 if auto != 4 else 0)
    text[1] = ",".join(row)
    (out / "choices.csv").write_text("\n".join(text) + "\n")
    (src / "broken.tif").unlink()
    # a re-run replaces the earlier outputs only with --overwrite; the edited choice survives it
    assert run(["annotate", str(src), "-n", "0", "--cytoplasm", "1", "-o", str(out), "-d", "30", "--no-sheets"]) == 2
    assert (
        run(
            [
                "annotate",
                str(src),
                "-n",
                "0",
                "--cytoplasm",
                "1",
                "-o",
                str(out),
                "-d",
                "30",
                "--no-sheets",
                "--overwrite",
            ]
        )
        == 0
    )
    again = read_choices(out / "choices.csv")
    assert again["one"]["chosen_index"] == int(row[1]) and again["one"]["auto_index"] == auto
    assert (read_annotation(out, "one")[1] == read_candidates(out, "one")[int(row[1])]).all()


def test_cli_user_errors_exit_2(tmp_path, rng):
    from lociseg.cli.main import run

    _write_two_channel(tmp_path / "x.tif", rng)
    assert run(["annotate", str(tmp_path / "x.tif"), "-o", str(tmp_path / "o"), "--gt"]) == 2
    assert run(["annotate", str(tmp_path / "x.tif"), "-o", str(tmp_path / "o"), "-d", "-3"]) == 2


def test_cli_annotate_bbbc018_with_gt(data_root, tmp_path, monkeypatch):
    import json

    from lociseg.cli.main import run

    monkeypatch.setenv("LOCISEG_DATA", str(data_root))
    from lociseg.data import load_split

    # two fields of the val split through the data set path of the CLI
    names = load_split("bbbc018")["val"][:2]
    folder = tmp_path / "sub"
    assert run(["annotate", "bbbc018@val", "-o", str(folder), "--gt", "--no-sheets"]) == 0
    rep = json.loads((folder / "report.json").read_text())
    assert {r["name"] for r in rep} >= set(names)
    assert np.mean([r["point_recall"] for r in rep]) > 0.85
    assert np.mean([r["fg_iou"] for r in rep]) > 0.75
    assert np.mean([r["cells_f1"] for r in rep]) > 0.6  # the machine-made cells against the GT cells
    assert all((folder / f"{n}.cells.tif").is_file() for n in names)
    assert run(["annotate", "bbbc018@val", "-o", str(tmp_path / "lab"), "--from-labels", "--gt"]) == 0
    rep = json.loads((tmp_path / "lab" / "report.json").read_text())
    assert np.mean([r["fg_iou"] for r in rep]) > 0.99

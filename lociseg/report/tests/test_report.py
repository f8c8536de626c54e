"""HTML report: files, metrics against ground truth, histograms, and a headless-Chromium screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from lociseg.report import ReportItem, build_report, overlay_outlines, svg_histogram


@pytest.fixture(scope="module")
def field(data_root):
    from lociseg.data import load_dataset

    return load_dataset("bbbc018@test", root=data_root)[0]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_files_and_metrics(tmp_path, field):
    gt = field.labels
    pred = gt.copy()
    pred[np.isin(gt, np.arange(0, gt.max() + 1, 4))] = 0  # drop every 4th cell: recall ~3/4, precision 1
    table = {"label": np.unique(pred[pred > 0]), "score": np.full(len(np.unique(pred[pred > 0])), 0.9)}
    index = build_report(
        [
            ReportItem(field.name, field.image, pred, table=table, gt=gt, meta={"model": "test-double"}),
            ReportItem("no gt/odd name", field.image[1], gt),
        ],
        tmp_path,
        max_rows=5,
    )
    page = index.read_text()
    p = _Collect()
    p.feed(page)
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert imgs == [f"{field.name}.png", "no_gt_odd_name.png"]
    for src in imgs:
        assert (tmp_path / src).is_file()
    links = {a["href"] for t, a in p.tags if t == "a"}
    assert {f"{field.name}.cells.csv", "#no_gt_odd_name"} <= links
    rows = np.genfromtxt(tmp_path / f"{field.name}.cells.csv", delimiter=",", names=True)
    assert len(rows) == len(np.unique(pred)) - 1 and np.all(rows["score"] == 0.9)
    assert page.count("<svg") == 8  # four histograms per image
    assert "First 5 of" in page
    # metrics: precision exactly 1, recall = kept / all
    recall = (len(np.unique(pred)) - 1) / (len(np.unique(gt)) - 1)
    cells = re.findall(r"<td>([^<]*)</td>", page.split("Against ground truth")[1].split("</table>")[0])
    assert cells[3] == "1" and float(cells[4]) == pytest.approx(recall, abs=1e-3)


def test_overlay_draws_both_outlines():
    img = np.zeros((20, 20), np.uint8)
    pred = np.zeros((20, 20), np.int32)
    pred[2:8, 2:8] = 1
    gt = np.zeros_like(pred)
    gt[10:16, 10:16] = 1
    rgb = overlay_outlines(img, pred, gt)
    assert tuple(rgb[2, 2]) == (255, 220, 0) and tuple(rgb[10, 10]) == (255, 0, 255)
    assert tuple(rgb[5, 5]) == (0, 0, 0)  # interiors untouched
    with pytest.raises(ValueError, match="do not match"):
        overlay_outlines(img, pred[:5])


def test_svg_histogram_counts():
    svg = svg_histogram(np.array([1, 1, 1, 2, np.nan]), "x", bins=2)
    assert "n=4" in svg and svg.count("<rect") == 2 and ">3</text>" in svg
    assert "no cells" in svg_histogram(np.array([]), "x")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path, field):
    index = build_report([ReportItem(field.name, field.image, field.labels, gt=field.labels)], tmp_path / "r")
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        index.as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    a = np.asarray(Image.open(shot).convert("RGB"))
    assert a.shape[:2] == (2000, 1200)
    # the overlay image was loaded and drawn: yellow outline pixels and many distinct colours on the page
    yellow = (a[..., 0] > 200) & (a[..., 1] > 180) & (a[..., 2] < 80)
    assert yellow.sum() > 500
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 1000

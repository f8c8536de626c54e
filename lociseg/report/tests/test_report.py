"""HTML report: files, metrics against ground truth, histograms, and a headless-Chromium screenshot."""

from __future__ import annotations

import html
import json
import os
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

# in <head>, before anything loads: record load and script errors and console.error, then after the load
# event what a person sees (images decoded, tables and histograms laid out) as JSON in <pre id="probe">
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(e.message || ('failed to load ' + (e.target.src || e.target.href))), true);
const _err = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); _err(...a); };
window.addEventListener('load', () => {
  const seen = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const imgs = [...document.images];
  const out = {
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && seen(i)).length,
    tables: [...document.querySelectorAll('table')].filter(seen).length,
    cells: document.querySelectorAll('table td').length,
    histograms: [...document.querySelectorAll('svg.hist')].filter(seen).length,
    bars: [...document.querySelectorAll('svg.hist rect')].filter(seen).length,
    errors: window.__errors,
  };
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    """The browser; skipped where missing, a failure under LOCISEG_REQUIRE_EXTRAS=1 (CI installs it)."""
    if CHROMIUM is None:
        if os.environ.get("LOCISEG_REQUIRE_EXTRAS") == "1":
            pytest.fail("LOCISEG_REQUIRE_EXTRAS=1 but headless Chromium is not installed (.ci/napari_setup.sh)")
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")
    return CHROMIUM


def _browse(page, profile, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _probe(index, profile, *extra: str) -> dict:
    """What Chromium shows of the report page ``index`` (see ``_PROBE``)."""
    page = index.with_name("probe.html")
    page.write_text(index.read_text().replace("<head>", "<head>" + _PROBE, 1))
    done = _browse(page, profile, "--dump-dom", *extra)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe result in Chromium's page: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_report_renders_in_headless_chromium(tmp_path, field):
    index = build_report(
        [
            ReportItem(
                field.name, field.image, field.labels, gt=field.labels, table={"label": np.unique(field.labels)[1:]}
            )
        ],
        tmp_path / "r",
    )
    shot = tmp_path / "shot.png"
    seen = _probe(index, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000")
    assert seen["errors"] == []  # no failed load, script error or console error
    assert seen["images"] >= 1 and seen["decoded"] == seen["images"]  # every overlay image loaded and shown
    assert seen["tables"] >= 2 and seen["cells"] > 10  # summary and metrics tables laid out
    assert seen["histograms"] >= 4 and seen["bars"] > 10  # histograms drawn with their bars
    # the screenshot: the overlay's yellow outlines were drawn
    assert shot.is_file(), "Chromium wrote no screenshot"
    a = np.asarray(Image.open(shot).convert("RGB"))
    assert a.shape[:2] == (2000, 1200)
    yellow = (a[..., 0] > 200) & (a[..., 1] > 180) & (a[..., 2] < 80)
    assert yellow.sum() > 500
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 1000
    # the same probe sees a broken page: a missing overlay image is reported
    (tmp_path / "r" / f"{field.name}.png").unlink()
    broken = _probe(index, tmp_path / "profile2")
    assert broken["decoded"] < broken["images"] and broken["errors"]

"""The plugin in a real napari viewer (``make_napari_viewer``: Qt window, OpenGL canvas).

Skipped without napari, a Qt binding or pytest-qt, and without a display;
with ``LOCISEG_REQUIRE_EXTRAS=1`` (CI, under Xvfb, with what
``.ci/napari_setup.sh`` installs) these fail instead. The
screenshot of the segment widget goes to ``$LOCISEG_ARTIFACTS`` (default
``test-artifacts/``, git-ignored).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

# CI sets LOCISEG_REQUIRE_EXTRAS=1: there a missing napari, Qt or display fails instead of skipping
_REQUIRED = os.environ.get("LOCISEG_REQUIRE_EXTRAS") == "1"


def _unavailable(reason: str) -> None:
    if _REQUIRED:
        raise RuntimeError(f"LOCISEG_REQUIRE_EXTRAS=1 but {reason}")
    pytest.skip(reason, allow_module_level=True)


for _module, _reason in (
    ("napari", "napari not installed (pip install 'lociseg[napari]')"),
    ("qtpy", "no Qt binding (pip install 'lociseg[napari]')"),
    ("pytestqt", "pytest-qt not installed (pip install pytest-qt)"),
):
    try:
        __import__(_module)
    except ImportError:
        _unavailable(_reason)
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    _unavailable("no display: run under Xvfb (xvfb-run -a python -m pytest ...)")

from lociseg.napari._widgets import AdaptWidget, AnnotationWidget, SegmentWidget  # noqa: E402 - after the display check

ARTIFACTS = Path(os.environ.get("LOCISEG_ARTIFACTS", Path(__file__).resolve().parents[3] / "test-artifacts"))


def _status_row(layer, yx) -> str:
    """What napari's status bar shows when the mouse is over pixel ``yx`` of a Labels layer."""
    return layer.get_status(tuple(float(v) for v in yx))["coordinates"]


def _assert_rows_on_their_cells(layer, labels):
    """Hovering cell k shows cell k's row (its own area); the background shows no row."""
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    for k, area in [(ids[0], counts[0]), (ids[len(ids) // 2], counts[len(ids) // 2]), (ids[-1], counts[-1])]:
        y, x = np.argwhere(labels == k)[0]
        assert f"area: {area}" in _status_row(layer, (y, x)), (k, _status_row(layer, (y, x)))
    y, x = np.argwhere(labels == 0)[0]
    assert "[No Properties]" in _status_row(layer, (y, x))


@pytest.fixture
def bbbc_field(data_root):
    from lociseg.data import load_dataset

    return load_dataset("bbbc018@test", root=data_root, channels=["actin", "DNA"])[0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_segment_widget_on_a_real_field(make_napari_viewer, qtbot, bbbc_field):
    """Shipped ``cells`` model on a BBBC018 field, driven by clicking Segment; screenshot saved."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1250, 720)
    s = bbbc_field
    # DNA opened first: the drop-downs still feed each layer to its own input, by name
    viewer.add_image(s.image[1], name="DNA", colormap="blue", blending="additive")
    viewer.add_image(s.image[0], name="actin", colormap="green", blending="additive")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="Segment cells", area="right")
    assert [b.value for b in w.inputs.boxes] == ["actin", "DNA"]
    assert w.inputs.mapping.value == "feeds: actin -> cell; DNA -> nucleus"
    w.run_button.native.click()
    qtbot.waitUntil(lambda: "lociseg cells" in viewer.layers, timeout=120_000)
    layer = viewer.layers["lociseg cells"]
    labels = np.asarray(layer.data)
    n = int(labels.max())
    assert n > 30 and f"{n} cells" in w.status.value
    assert layer.__class__.__name__ == "Labels" and labels.shape == s.image.shape[1:]
    feats = layer.features
    assert list(feats["index"]) == list(range(1, n + 1)) and list(feats["label"]) == list(feats["index"])
    _assert_rows_on_their_cells(layer, labels)
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=10_000)
    layer.contour = 2
    viewer.reset_view()
    k = n // 2  # the status bar as when hovering cell k
    viewer.status = layer.get_status(tuple(float(v) for v in np.argwhere(labels == k)[0]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = viewer.window.screenshot(str(ARTIFACTS / "napari_segment_widget.png"), canvas_only=False)
    assert shot.ndim == 3 and shot.shape[0] > 300 and (ARTIFACTS / "napari_segment_widget.png").stat().st_size > 10_000


def test_segment_with_no_image_says_so(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.run_button.native.click()  # an exception in this slot would fail the test (pytest-qt)
    assert w.status.value.startswith("error: no image layer") and w.worker is None
    viewer.add_image(np.zeros((32, 32)), name="a")
    # the nuclear input of cells is optional: one unnamed layer feeds the cell input, zeros the nucleus
    assert [b.value for b in w.inputs.boxes] == ["a", None]
    assert w.inputs.mapping.value == "feeds: a -> cell; (none: zeros) -> nucleus"
    assert [b.label for b in w.inputs.boxes] == ["cell input", "nucleus input (optional)"]
    w.inputs.boxes[0].value = None  # a required input left empty
    w.run_button.native.click()
    assert "choose the layer for the cell input" in w.status.value and w.run_button.enabled
    viewer.add_image(np.zeros((32, 32)), name="b")
    assert [b.value for b in w.inputs.boxes] == ["a", "b"]  # unnamed layers in order
    w.inputs.boxes[1].value = "a"
    w.run_button.native.click()
    assert "layer 'a' is chosen for two inputs" in w.status.value and w.worker is None
    assert w.inputs.mapping.value == "feeds: a -> cell; a -> nucleus"
    w.model.value = "nuclei"  # another model: one drop-down per input of it
    assert [b.label for b in w.inputs.boxes] == ["nuclei input"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_segment_widget_phase_contrast_alone(make_napari_viewer, qtbot, data_root):
    """One phase-contrast layer and ``cells``: the nuclear input stays empty (zeros) and cells come out."""
    from lociseg.data import load_dataset

    s = load_dataset("usiigaci@test", root=data_root)[0]
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(s.image)[0], name="phase")
    w = SegmentWidget(viewer)
    assert [b.value for b in w.inputs.boxes] == ["phase", None]
    w.run_button.native.click()
    qtbot.waitUntil(lambda: "lociseg cells" in viewer.layers, timeout=120_000)
    n = int(np.asarray(viewer.layers["lociseg cells"].data).max())
    assert n >= 10 and f"{n} cells" in w.status.value


def test_segment_widget_channels_of_one_layer_and_stain_names(make_napari_viewer):
    viewer = make_napari_viewer()
    w = SegmentWidget(viewer)
    viewer.add_image(np.zeros((2, 32, 32)), name="field", channel_axis=None)
    assert [b.value for b in w.inputs.boxes] == ["field [0]", "field [1]"]
    viewer.layers.clear()
    viewer.add_image(np.zeros((32, 32)), name="Hoechst 33342")
    viewer.add_image(np.zeros((32, 32)), name="Phalloidin-488")
    assert [b.value for b in w.inputs.boxes] == ["Phalloidin-488", "Hoechst 33342"]
    w.inputs.boxes[0].value = "Hoechst 33342"  # chosen by hand: kept when layers change
    viewer.add_image(np.zeros((32, 32)), name="other")
    assert w.inputs.boxes[0].value == "Hoechst 33342"


@pytest.fixture
def seg_output(tmp_path):
    from lociseg.predict.outputs import write_outputs
    from lociseg.predict.table import cell_table

    labels = np.zeros((40, 50), np.uint16)
    labels[2:10, 3:12] = 1
    labels[15:25, 20:33] = 2
    labels[30:38, 40:48] = 3
    return write_outputs(tmp_path, "img", labels, cell_table(labels, np.array([0.9, 0.7, 0.8]))), labels


def test_open_sidecar_gives_labels_with_rows_on_their_cells(make_napari_viewer, seg_output):
    paths, labels = seg_output
    viewer = make_napari_viewer()
    layers = viewer.open(str(paths["meta"]), plugin="lociseg")
    assert [la.name for la in layers] == ["img labels"]
    np.testing.assert_array_equal(layers[0].data, labels)
    _assert_rows_on_their_cells(layers[0], labels)
    # File > Open (no plugin named): lociseg is the only reader of the sidecar, no choice to make
    viewer.layers.clear()
    assert [la.name for la in viewer.open(str(paths["meta"]), plugin=None)] == ["img labels"]
    # any other JSON file: napari finds no reader, lociseg is not among the candidates (it was, for every *.json)
    from napari.errors import NoAvailableReaderError

    notes = paths["meta"].with_name("notes.json")
    notes.write_text('{"a": 1}')
    with pytest.raises(NoAvailableReaderError):
        viewer.open(str(notes), plugin=None)


def test_plain_tiff_opens_without_asking_for_a_reader(make_napari_viewer, seg_output, tmp_path):
    import tifffile

    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    viewer = make_napari_viewer()
    # plugin=None is File > Open: MultipleReaderError ("Choose reader") if lociseg also claimed *.tif
    layers = viewer.open(str(raw), plugin=None)
    assert len(layers) == 1 and layers[0].__class__.__name__ == "Image"
    # so is the label TIFF lociseg writes (open the .lociseg.json beside it for labels and table)
    assert len(viewer.open(str(seg_output[0]["labels"]), plugin=None)) == 1


def test_annotation_widget_edit_and_save(make_napari_viewer, tmp_path):
    from lociseg.annotate import write_annotation
    from lociseg.annotate.sheet import read_choices
    from lociseg.annotate.store import read_annotation

    cands = np.zeros((3, 20, 20), bool)
    for k in range(3):
        cands[k, 2 : 8 + 3 * k, 2:10] = True
    write_annotation(tmp_path, "im", np.array([[4.0, 4.0]]), cands[1], {}, candidates=cands)
    viewer = make_napari_viewer()
    w = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.folder.value = tmp_path
    assert w.image.choices == ("im",), (w.status.value, w.folder.value, list(tmp_path.iterdir()))
    w.image.value = "im"
    assert w.choice.value == 1 and {"lociseg points", "lociseg foreground"} <= {la.name for la in viewer.layers}
    assert viewer.dims.current_step[0] == 1  # the slider shows the chosen candidate
    viewer.layers["lociseg points"].add([[12.0, 6.0]])
    w.choice.value = 2
    assert viewer.dims.current_step[0] == 2
    w.save_button.native.click()
    assert w.status.value.startswith("saved 2 points, candidate 2")
    pts, fg = read_annotation(tmp_path, "im")
    np.testing.assert_allclose(pts, [[4.0, 4.0], [12.0, 6.0]])
    assert np.array_equal(fg, cands[2]) and read_choices(tmp_path / "choices.csv")["im"]["chosen_index"] == 2


def _adapt_widget(viewer, bbbc_field, folder):
    """The Adapt widget on a 256 px crop of a BBBC018 field, 2 training steps, into ``folder``."""
    crop = bbbc_field.image[:, 128:384, 128:384]
    viewer.add_image(crop[0], name="actin", colormap="green", blending="additive")
    viewer.add_image(crop[1], name="DNA", colormap="blue", blending="additive")
    w = AdaptWidget(viewer)
    viewer.window.add_dock_widget(w, name="Adapt to these images", area="right")
    w.nucleus.value, w.cytoplasm.value = "DNA", "actin"
    w.folder.value, w.steps.value, w.minutes.value = folder, 2, 1.0
    return w


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_adapt_then_finetune_on_a_painted_correction(make_napari_viewer, qtbot, bbbc_field, tmp_path):
    """Adapt on a real crop, split a cell with the paint path napari's brush uses, fine-tune on it."""
    from safetensors.torch import load_file

    viewer = make_napari_viewer()
    w = _adapt_widget(viewer, bbbc_field, tmp_path / "adapted")
    w.adapt_button.native.click()
    assert not w.adapt_button.enabled and w.cancel_button.enabled  # running in the worker thread
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert "adapted model saved" in w.status.value, w.status.value
    # the label-free quality estimate of adapt.json is shown
    quality = json.loads((tmp_path / "adapted" / "adapt.json").read_text())["quality"]["actin"]["quality"]
    assert f"estimated F1@0.5 {quality:.2f}" in w.status.value, w.status.value
    qtbot.waitUntil(lambda: w.bar.value == 100, timeout=10_000)
    assert w.adapt_button.enabled and not w.cancel_button.enabled
    assert w.progress_threads == {threading.main_thread().name}  # widgets changed in the GUI thread only
    layer = viewer.layers["lociseg adapted"]
    labels = np.array(layer.data)
    assert labels.shape == (256, 256) and labels.max() > 5
    assert list(layer.features["index"]) == sorted(np.unique(labels[labels > 0]).tolist())
    assert (tmp_path / "adapted" / "best").is_dir()
    # split the largest cell: its upper half becomes a new cell
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    k, new = int(ids[areas.argmax()]), int(labels.max()) + 1
    ys, xs = np.nonzero(labels == k)
    upper = ys < np.median(ys)
    layer.data_setitem((ys[upper], xs[upper]), new)
    assert w.corrected.value == "lociseg adapted" and w.rest.value == "targets"
    w.rest.value = "weak"  # corrected cells supervised inside weak training: the log then proves they were used
    w.finetune_button.native.click()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert "fine-tuned on 2 corrected cell(s)" in w.status.value, w.status.value
    run = tmp_path / "adapted" / "finetune-1"
    assert "lociseg finetune-1" in viewer.layers and viewer.layers["lociseg finetune-1"].data.shape == (256, 256)
    # the two halves are what it trained on as full labels: the supervised mask terms are in its log
    corrected = tifffile.imread(run / "corrections" / "actin.corrected.tif")
    assert set(np.unique(corrected)) == {0, k, new} and (corrected == new).sum() == upper.sum()
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert {"mask_bce", "mask_dice", "weak"} <= set(header)
    # and the model changed
    before = load_file(str(tmp_path / "adapted" / "best" / "model.safetensors"))
    after = load_file(str(run / "best" / "model.safetensors"))
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_adapt_asks_before_replacing_a_model_and_cancels(make_napari_viewer, qtbot, bbbc_field, tmp_path):
    folder = tmp_path / "adapted"
    folder.mkdir()
    (folder / "adapt.json").write_text("{}")
    viewer = make_napari_viewer()
    w = _adapt_widget(viewer, bbbc_field, folder)
    asked = []
    w.confirm = lambda q: asked.append(q) or False
    w.adapt_button.native.click()
    assert asked and "holds a model" in asked[0] and w.worker is None and "not started" in w.status.value
    assert (folder / "adapt.json").read_text() == "{}"
    w.confirm = lambda q: True
    w.adapt_button.native.click()
    w.cancel_button.native.click()
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert w.status.value.startswith("cancelled"), w.status.value
    assert not (folder / "best").exists() and "lociseg adapted" not in viewer.layers


def test_adapt_stains_by_layer_name_never_the_same_twice(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.uint16), name="DNA")  # added before actin: still the nuclear stain
    viewer.add_image(np.zeros((64, 64), np.uint16), name="actin")
    w = AdaptWidget(viewer)
    assert (w.nucleus.value, w.cytoplasm.value) == ("DNA", "actin")
    assert w.stains.mapping.value == "feeds: DNA -> nucleus; actin -> cytoplasm"
    w.folder.value = tmp_path / "a"
    w.cytoplasm.value = "DNA"
    w.adapt_button.native.click()
    assert "layer 'DNA' is chosen for two inputs" in w.status.value and w.worker is None
    assert not (tmp_path / "a").exists()


def test_adapt_errors_are_one_line_messages(make_napari_viewer, qtbot, bbbc_field, tmp_path):
    viewer = make_napari_viewer()
    w = AdaptWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.adapt_button.native.click()  # no image layer: a message, not an exception
    assert w.status.value.startswith("error: no image layers") and w.worker is None
    w.finetune_button.native.click()
    assert w.status.value == "error: adapt first, then paint corrections on the result"
    viewer.layers.clear()
    w = _adapt_widget(viewer, bbbc_field, tmp_path / "a")
    w.model.value = "no-such-model"
    w.adapt_button.native.click()  # fails in the worker thread
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert w.status.value.startswith("error: ") and "\n" not in w.status.value and "no-such-model" in w.status.value


def test_segment_worker_error_is_a_status_line(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32)), name="actin")
    viewer.add_image(np.zeros((32, 32)), name="DNA")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.model.value = "no-such-model"
    w.run_button.native.click()  # fails in the worker thread: re-raised in the event loop it would fail this test
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=60_000)
    assert w.status.value.startswith("error: ") and "no-such-model" in w.status.value


def test_every_ome_zarr_lociseg_writes_opens_in_napari_ome_zarr(make_napari_viewer, tmp_path):
    """``export --format ome-zarr`` and the cluster's block store: the image channels by name, and the labels."""
    try:
        import napari_ome_zarr  # noqa: F401
    except ImportError:
        _unavailable("napari-ome-zarr not installed (.ci/napari_setup.sh)")
    from lociseg.export.formats import export_labels
    from lociseg.scale_out.store import create_store

    labels = np.zeros((300, 300), np.int32)
    labels[10:50, 10:50], labels[100:140, 60:90] = 1, 2
    image = np.random.default_rng(0).integers(0, 4000, (2, 300, 300)).astype(np.uint16)
    exported = export_labels(labels, tmp_path, "field", "ome-zarr", image=image, channel_names=["actin", "DNA"])
    blocks = tmp_path / "big.ome.zarr"
    bounds = np.array([[200.0, 300.0], [3000.0, 3900.0]])[:, :, None, None]
    create_store(blocks, (300, 300), 256, 2, np.uint16, image, ["actin", "DNA"], bounds, "big")
    viewer = make_napari_viewer()
    for path, name in ((exported, "field"), (blocks, "big")):
        layers = viewer.open(str(path), plugin="napari-ome-zarr")
        kinds = sorted((layer.__class__.__name__, layer.name) for layer in layers)
        assert [k for k, _ in kinds] == ["Image", "Image", "Labels"], kinds
        assert [n for k, n in kinds if k == "Image"] == [f"{name}: DNA", f"{name}: actin"]
    np.testing.assert_array_equal(np.asarray(viewer.layers[-1].data[0]), 0)  # the block store's labels, unwritten

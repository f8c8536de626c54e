"""napari widgets on a headless viewer model; skipped without napari.

``napari.components.ViewerModel`` is the viewer without its OpenGL canvas
(``make_napari_viewer`` needs OpenGL, absent on headless CI machines); the
widgets only use its layer list and dims. Qt still runs (offscreen) for the
magicgui widgets and the worker thread.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari not installed (pip install 'lociseg[napari]' pyqt5)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from napari.components import ViewerModel  # noqa: E402


def test_segment_widget_adds_labels(qtbot, monkeypatch):
    import torch
    from scipy import ndimage as ndi

    from lociseg.models.base import InputSpec, SegmentationModel
    from lociseg.napari._widgets import SegmentWidget
    from lociseg.predict import api
    from lociseg.models.semantic import labels_to_instances

    class Cfg:
        input = InputSpec(in_channels=1, channels=["DNA"], target_diameter=10)

    class Threshold(SegmentationModel):
        config = Cfg()

        def predict_instances(self, image: torch.Tensor):
            return labels_to_instances(ndi.label(image[0, 0].numpy() > 0.5)[0])

    monkeypatch.setattr(api, "load_model", lambda name, device="auto": api.Segmenter(Threshold(), device="cpu"))
    viewer = ViewerModel()
    img = np.zeros((64, 64), np.float32)
    img[5:15, 5:15] = img[30:42, 30:40] = 1
    viewer.add_image(img, name="dna")
    w = SegmentWidget(viewer)
    w.diameter.value = 10
    w.run()
    qtbot.waitUntil(lambda: any(layer.name.startswith("lociseg") for layer in viewer.layers), timeout=30000)
    labels = viewer.layers["lociseg cells"].data
    assert labels.max() == 2 and "2 cells" in w.status.value


def test_annotation_widget_save(qtbot, tmp_path):
    from lociseg.annotate import write_annotation
    from lociseg.annotate.store import read_annotation
    from lociseg.napari._widgets import AnnotationWidget

    cands = np.zeros((3, 20, 20), bool)
    for k in range(3):
        cands[k, 2 : 8 + 3 * k, 2:10] = True
    write_annotation(tmp_path, "im", np.array([[4.0, 4.0]]), cands[1], {}, candidates=cands)
    viewer = ViewerModel()
    w = AnnotationWidget(viewer)
    w.folder.value = tmp_path
    assert w.image.choices == ("im",)
    w.image.value = "im"
    assert w.choice.value == 1 and "lociseg points" in viewer.layers
    viewer.layers["lociseg points"].add([[12.0, 6.0]])
    w.choice.value = 2
    w.save()
    pts, fg = read_annotation(tmp_path, "im")
    assert len(pts) == 2 and np.array_equal(fg, cands[2])

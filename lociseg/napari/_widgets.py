"""napari dock widgets: segment the selected image; review weak annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from .logic import labels_features


class SegmentWidget(Container):
    """Segment the chosen image layer(s) with a lociseg model; the result is a Labels layer.

    Model: a checkpoint folder or shipped name (``cells``, ``nuclei``).
    Channels: image layers, in the model's order (e.g. actin then DNA), or a
    single multi-channel layer. Diameter 0 estimates it. Prediction runs in
    a worker thread so the viewer stays responsive.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = LineEdit(value="cells", label="model")
        self.layers = LineEdit(value="", label="layers (comma; empty = all images)")
        self.diameter = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=1.0, label="diameter (0 = auto)")
        self.run_button = PushButton(text="Segment")
        self.status = Label(value="")
        self.extend([self.model, self.layers, self.diameter, self.run_button, self.status])
        self.run_button.changed.connect(self.run)
        self.worker = None

    def _image_layers(self, *_):
        return [layer.name for layer in self.viewer.layers if layer.__class__.__name__ == "Image"]

    def stack(self) -> np.ndarray:
        """(C, H, W) array of the named image layers (all image layers when none named)."""
        names = [n.strip() for n in self.layers.value.split(",") if n.strip()] or self._image_layers()
        if not names:
            raise ValueError("no image layer to segment: open an image first")
        missing = [n for n in names if n not in self.viewer.layers]
        if missing:
            raise ValueError(f"no layer named {missing[0]!r}")
        arrays = []
        for n in names:
            data = np.asarray(self.viewer.layers[n].data)
            arrays.extend(data if data.ndim == 3 else [data])
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"image layers differ in size: {sorted({a.shape for a in arrays})}")
        return np.stack(arrays)

    def run(self, *_):
        from napari.qt.threading import thread_worker

        from ..predict.api import load_model

        try:
            image = self.stack()
        except ValueError as exc:  # no image layer, a misspelt name, channels of different sizes
            self.status.value = f"error: {exc}"
            return
        model, diameter = self.model.value, (self.diameter.value or None)

        @thread_worker
        def work():
            yield "loading model"
            seg = load_model(model)
            yield "segmenting"
            return seg.segment(image, diameter=diameter)

        self.worker = work()
        self.worker.yielded.connect(lambda msg: setattr(self.status, "value", msg))
        self.worker.returned.connect(self._done)
        self.worker.errored.connect(lambda exc: setattr(self.status, "value", f"error: {exc}"))
        self.run_button.enabled = False
        self.worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker.start()

    def _done(self, result):
        labels, table = result
        self.viewer.add_labels(
            labels,
            name=f"lociseg {self.model.value}",
            features=labels_features(table.to_dict()),
            metadata=dict(table.meta),
        )
        m = table.meta
        scale = f", estimated, confidence {m['scale_confidence']:.2f}" if "scale_confidence" in m else ""
        unsure = " - unsure scale: check it or set the diameter" if m.get("scale_unsure") else ""
        self.status.value = (
            f"{len(table)} cells (diameter {m.get('diameter_used', float('nan')):.1f} px{scale}){unsure}"
        )


class AnnotationWidget(Container):
    """Review ``lociseg annotate`` output: points (editable) and the foreground candidates.

    Pick an image, look at the candidates (a Labels layer per candidate,
    the chosen one visible), choose one with the spin box, add/remove points
    in the Points layer, and Save: points, foreground and ``choices.csv``
    are written where ``lociseg annotate`` and ``lociseg train`` read them.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.folder = FileEdit(mode="d", label="annotation folder")
        # choices as a callable: napari calls reset_choices() whenever layers change, which
        # would empty a fixed list (this widget adds layers when an image is picked)
        self.image = ComboBox(label="image", choices=self._names)
        self.choice = SpinBox(value=0, min=0, max=4, label="foreground candidate")
        self.save_button = PushButton(text="Save")
        self.status = Label(value="")
        self.extend([self.folder, self.image, self.choice, self.save_button, self.status])
        self.folder.changed.connect(self._scan)
        self.image.changed.connect(self._load)
        self.choice.changed.connect(self._show_choice)
        self.save_button.changed.connect(self.save)
        self.edit = None

    def _names(self, *_) -> list[str]:
        from .logic import list_annotations

        folder = self.folder.value
        return list_annotations(folder) if folder and Path(folder).is_dir() else []

    def _scan(self, *_):
        self.image.reset_choices()
        self.status.value = f"{len(self.image.choices)} annotated image(s)"

    def _load(self, *_):
        from .logic import load_annotation

        if not self.image.value:
            return
        self.edit = load_annotation(self.folder.value, self.image.value)
        for name in ("lociseg points", "lociseg foreground"):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.viewer.add_labels(self.edit.candidates.astype(np.uint8), name="lociseg foreground", opacity=0.35)
        self.viewer.add_points(self.edit.points, name="lociseg points", size=6, face_color="yellow")
        self.choice.max = len(self.edit.candidates) - 1
        self.choice.value = self.edit.chosen_index
        self._show_choice()

    def _show_choice(self, *_):
        if self.edit is None or "lociseg foreground" not in self.viewer.layers:
            return
        # the candidates are a (K, H, W) stack: move the viewer's slider to the chosen one
        self.viewer.dims.set_current_step(0, int(self.choice.value))
        self.status.value = f"candidate {self.choice.value} (automatic: {self.edit.auto_index})"

    def save(self, *_):
        from .logic import save_annotation

        if self.edit is None:
            self.status.value = "nothing loaded"
            return
        self.edit.points = np.asarray(self.viewer.layers["lociseg points"].data)[:, -2:]
        self.edit.chosen_index = int(self.choice.value)
        save_annotation(self.folder.value, self.edit)
        self.status.value = f"saved {len(self.edit.points)} points, candidate {self.edit.chosen_index}"

"""napari dock widgets: segment the selected image; review weak annotations; adapt and correct."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)

from ..errors import LociError
from .logic import holds_run, labels_features, next_free_folder, safe_name

if TYPE_CHECKING:
    from ..train.adapt import AdaptRun
    from ..train.corrections import FinetuneRun
    from ..train.finetune import AdaptSample


class _InputChoice(Container):
    """One drop-down per model input: which image layer (or channel of a layer) feeds it.

    Each input starts on the layer whose name says its stain (DNA, Hoechst,
    DAPI -> the nuclear input; actin, phalloidin -> the cytoplasm input;
    :func:`~lociseg.napari.logic.assign_layers`) until the user picks one; the
    line below says which layer feeds which input, and the same layer twice
    is refused.
    """

    def __init__(self, viewer, inputs: list[str], labels: list[str] | None = None, optional: list[str] | None = None):
        super().__init__(labels=True)
        self.viewer = viewer
        self.optional = [o.lower() for o in optional or []]
        self.titles = labels
        self.mapping = Label(value="")
        self._picked: set[int] = set()  # inputs the user chose by hand: left alone by the defaults
        self._updating = False
        self.boxes: list[ComboBox] = []
        self.set_inputs(inputs)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)

    def set_inputs(self, inputs: list[str], optional: list[str] | None = None) -> None:
        """One drop-down per input name (the model changed); optional inputs may stay empty."""
        self.inputs = list(inputs)
        if optional is not None:
            self.optional = [o.lower() for o in optional]
        self.clear()
        self._picked.clear()
        titles = self.titles if self.titles and len(self.titles) == len(self.inputs) else None
        self.boxes = [
            ComboBox(label=titles[k] if titles else self._title(name), choices=self._choices, nullable=True)
            for k, name in enumerate(self.inputs)
        ]
        for k, box in enumerate(self.boxes):
            box.changed.connect(lambda *_, k=k: self._chosen(k))
        self.extend([*self.boxes, self.mapping])
        self.refresh()

    def _title(self, name: str) -> str:
        return f"{name} input (optional)" if name.lower() in self.optional else f"{name} input"

    def sources(self) -> dict:
        from .logic import channel_sources

        images = {layer.name: layer.data for layer in self.viewer.layers if layer.__class__.__name__ == "Image"}
        return channel_sources(images)

    def _choices(self, *_) -> list[str]:
        return list(self.sources())

    def _chosen(self, k: int) -> None:
        if not self._updating:
            self._picked.add(k)
        self._describe()

    def refresh(self, *_) -> None:
        """New choices after layers came or went; inputs not chosen by hand follow the layer names."""
        from .logic import assign_layers

        self._updating = True
        try:
            for box in self.boxes:
                box.reset_choices()
            choices = self._choices()
            kept = {k: b.value for k, b in enumerate(self.boxes) if k in self._picked and b.value in choices}
            self._picked = set(kept)
            rest = [c for c in choices if c not in kept.values()]
            free = [k for k in range(len(self.boxes)) if k not in kept]
            names = [self.inputs[k] for k in free]
            for k, value in zip(free, assign_layers(names, rest, self.optional)):
                self.boxes[k].value = value
        finally:
            self._updating = False
        self._describe()

    def _describe(self) -> None:
        parts = [
            f"{b.value or ('(none: zeros)' if name.lower() in self.optional else '(none)')} -> {name}"
            for name, b in zip(self.inputs, self.boxes)
        ]
        self.mapping.value = "feeds: " + "; ".join(parts) if parts else ""

    def stack(self) -> np.ndarray:
        """(C, H, W): the chosen layer or channel for each input, in the model's order."""
        chosen = [b.value for b in self.boxes]
        if not self._choices():
            raise ValueError("no image layer to segment: open an image first")
        missing = [name for name, c in zip(self.inputs, chosen) if not c and name.lower() not in self.optional]
        if missing:
            raise ValueError(f"choose the layer for the {missing[0]} input")
        if not any(chosen):
            raise ValueError("choose a layer for at least one input")
        twice = sorted({c for c in chosen if c and chosen.count(c) > 1})
        if twice:
            raise ValueError(f"layer {twice[0]!r} is chosen for two inputs: choose one layer per input")
        sources = self.sources()
        arrays: list[np.ndarray | None] = []
        for c in chosen:
            if not c:  # an optional input left empty: the zero plane the model saw in training
                arrays.append(None)
                continue
            layer, channel = sources[c]
            data = np.asarray(self.viewer.layers[layer].data)
            arrays.append(data if channel is None else data[channel])
        shapes = {a.shape for a in arrays if a is not None}
        if len(shapes) > 1:
            raise ValueError(f"image layers differ in size: {sorted(shapes)}")
        like = next(a for a in arrays if a is not None)
        return np.stack([np.zeros_like(like) if a is None else a for a in arrays])


class SegmentWidget(Container):
    """Segment image layers with a lociseg model; the result is a Labels layer.

    Model: a checkpoint folder or shipped name (``cells``, ``nuclei``). One
    drop-down per model input (e.g. actin, DNA) says which image layer, or
    channel of a multi-channel layer, feeds it; each starts on the layer
    whose name matches (DNA/Hoechst/DAPI -> nuclear input). Diameter 0
    estimates it. Prediction runs in a worker thread so the viewer stays
    responsive.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = LineEdit(value="cells", label="model")
        inputs = self._model_inputs("cells")
        self.inputs = _InputChoice(
            napari_viewer, inputs[0] if inputs else ["channel 0"], optional=inputs[1] if inputs else None
        )
        self.diameter = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=1.0, label="diameter (0 = auto)")
        self.run_button = PushButton(text="Segment")
        self.status = Label(value="")
        self.extend([self.model, self.inputs, self.diameter, self.run_button, self.status])
        self.model.changed.connect(self._model_changed)
        self.run_button.changed.connect(self.run)
        self.worker = None

    @staticmethod
    def _model_inputs(model: str) -> tuple[list[str], list[str]] | None:
        """(inputs, optional inputs) of a model, or None while the name is not (yet) a model."""
        from .logic import model_inputs, optional_inputs

        try:
            return model_inputs(model.strip()), optional_inputs(model.strip())
        except (LociError, OSError, ValueError, KeyError):
            return None  # not (yet) a model: a name being typed

    def _model_changed(self, *_) -> None:
        inputs = self._model_inputs(self.model.value)
        if inputs is not None and inputs[0] != self.inputs.inputs:
            self.inputs.set_inputs(*inputs)

    def stack(self) -> np.ndarray:
        """(C, H, W) array of the chosen layers, one per model input in its order."""
        return self.inputs.stack()

    def run(self, *_):
        from napari.qt.threading import thread_worker

        from ..predict.api import load_model

        try:
            image = self.stack()
        except ValueError as exc:  # no image layer, a layer chosen twice, channels of different sizes
            self.status.value = f"error: {exc}"
            return
        model, diameter = self.model.value, (self.diameter.value or None)

        @thread_worker(ignore_errors=True)  # errors: the status line, not an exception in the event loop
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


def _one_line(exc: BaseException) -> str:
    """An exception as one line for a notification (LociErrors already read as messages)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, LociError) else f"{type(exc).__name__}: {text}".rstrip(": ")


class AdaptWidget(Container):
    """Adapt a model to the open images without labels, then fine-tune it on your corrections.

    *Adapt to these images*: the nucleus and cytoplasm image layers are
    annotated by machine, the starting model is fine-tuned on them
    (:func:`lociseg.train.adapt.adapt_model`, as ``lociseg adapt``) into the
    chosen folder, which then holds the adapted model, and the result comes
    back as a Labels layer. *Fine-tune on corrections*: paint on that layer
    (new cells, erase, split a cell by painting a new label over part of
    it), and the cells you changed train as full labels while the rest
    trains on the adapt targets or, if chosen, stays weak
    (:func:`lociseg.train.corrections.finetune_on_corrections`); the new model
    goes into ``<folder>/finetune-<k>`` and its result into a new layer.
    Both run in a worker thread with a progress bar and a Cancel button;
    errors appear as one-line notifications.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        from superqt.utils import ensure_main_thread

        # the worker thread reports progress; widgets may only change in the GUI thread
        self._post_progress = ensure_main_thread(self._show_progress)
        self.viewer = napari_viewer
        self.worker = None
        self._cancel = threading.Event()
        self._run: dict | None = None  # the adapt run: folder, image name and (nucleus, cytoplasm) stack
        self._outputs: dict[str, tuple[str, np.ndarray]] = {}  # result layer -> (model folder, labels as output)
        self.progress_threads: set[str] = set()  # where progress was shown (the GUI thread only)
        # which layer is which stain: chosen by layer name (DNA, Hoechst, DAPI / actin, phalloidin), never one twice
        self.stains = _InputChoice(
            napari_viewer, ["nucleus", "cytoplasm"], labels=["nuclear stain layer", "cytoplasm stain layer"]
        )
        self.nucleus, self.cytoplasm = self.stains.boxes
        self.model = LineEdit(value="cells", label="start from model")
        self.folder = FileEdit(mode="d", label="save adapted model to")
        self.minutes = FloatSpinBox(value=5.0, min=0.1, max=600.0, step=1.0, label="minutes of training")
        self.steps = SpinBox(value=0, min=0, max=1_000_000, label="max steps (0 = until the time is up)")
        self.adapt_button = PushButton(text="Adapt to these images")
        self.corrected = ComboBox(label="corrected layer", choices=self._result_layers)
        self.rest = ComboBox(
            label="rest of the image",
            choices=[("adapt targets", "targets"), ("weak (machine points, foreground)", "weak")],
            value="targets",
        )
        self.finetune_button = PushButton(text="Fine-tune on corrections")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="")
        self.extend(
            [
                self.stains,
                self.model,
                self.folder,
                self.minutes,
                self.steps,
                self.adapt_button,
                self.corrected,
                self.rest,
                self.finetune_button,
                self.cancel_button,
                self.bar,
                self.status,
            ]
        )
        self.adapt_button.changed.connect(self.adapt)
        self.finetune_button.changed.connect(self.finetune)
        self.cancel_button.changed.connect(self.cancel)

    # ------------------------------------------------------------------ helpers
    def _result_layers(self, *_) -> list[str]:
        return [n for n in self._outputs if n in self.viewer.layers]

    def confirm(self, question: str) -> bool:
        """Ask the user a yes/no question (a dialog)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self.native, "lociseg", question)
        return answer == QMessageBox.StandardButton.Yes

    def _say(self, text: str, *, error: bool = False) -> None:
        from napari.utils.notifications import show_error, show_info

        self.status.value = f"error: {text}" if error else text
        (show_error if error else show_info)(text)

    def _show_progress(self, stage: str, fraction: float) -> None:
        self.progress_threads.add(threading.current_thread().name)
        self.bar.value = int(round(100 * fraction))
        self.bar.label = stage
        self.status.value = f"{stage} {100 * fraction:.0f} %"

    def _callback(self, stage: str, fraction: float) -> bool:
        """Runs in the worker thread: report progress, answer whether to cancel."""
        self._post_progress(stage, fraction)
        return self._cancel.is_set()

    def _stack(self) -> tuple[str, np.ndarray]:
        """(name, (2, H, W) nucleus, cytoplasm) of the chosen layers."""
        if not self.stains._choices():
            raise ValueError("no image layers: open the nuclear and cytoplasm stains first")
        image = self.stains.stack()  # one layer per stain, never the same twice, of one size
        return safe_name(self.cytoplasm.value), image

    def _start(self, work, done) -> None:
        from napari.qt.threading import create_worker

        self._cancel.clear()
        self.bar.value = 0
        self.worker = create_worker(work, _ignore_errors=True)  # errors: the one-line message below
        self.worker.returned.connect(done)
        self.worker.errored.connect(lambda exc: self._say(_one_line(exc), error=True))
        self.worker.finished.connect(self._idle)
        self._busy(True)
        self.worker.start()

    def _busy(self, busy: bool) -> None:
        self.adapt_button.enabled = self.finetune_button.enabled = not busy
        self.cancel_button.enabled = busy

    def _idle(self) -> None:
        self._busy(False)
        self.worker = None

    def cancel(self, *_) -> None:
        """Ask the running job to stop (after the step in progress; what is done is kept)."""
        self._cancel.set()
        self.status.value = "cancelling ..."

    def _show(self, name: str, model: str, sample: AdaptSample) -> None:
        from .logic import labels_features

        table = sample.table
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_labels(
            sample.labels,
            name=name,
            features=labels_features(table.to_dict()),
            metadata={**table.meta, "lociseg_model": model},
        )
        self._outputs[name] = (model, np.array(sample.labels, copy=True))
        self.corrected.reset_choices()
        self.corrected.value = name

    # ------------------------------------------------------------------ adapt
    def adapt(self, *_) -> None:
        """Adapt the starting model to the chosen image layers (worker thread)."""
        from ..train.adapt import adapt_model

        try:
            name, image = self._stack()
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        folder = self.folder.value
        if not folder or str(folder) in ("", "."):
            self._say("choose the folder to save the adapted model to", error=True)
            return
        folder = Path(folder)
        overwrite = False
        if holds_run(folder):
            if not self.confirm(f"{folder} holds a model already. Replace it?"):
                self.status.value = "not started: choose another folder"
                return
            overwrite = True
        init, minutes, steps = self.model.value.strip() or "cells", self.minutes.value, self.steps.value or None

        def work():
            return adapt_model(
                [(name, image)],
                folder,
                nucleus=0,
                cytoplasm=1,
                minutes=minutes,
                init=init,
                steps=steps,
                overwrite=overwrite,
                progress=False,
                callback=self._callback,
            )

        def done(res: AdaptRun) -> None:
            if res.interrupted:
                self._say(f"cancelled; what was done is kept in {folder}")
                return
            if not res.samples:
                self._say(f"no usable image: {'; '.join(res.skipped.values())}", error=True)
                return
            self._run = {"folder": folder, "name": name, "image": image}
            self._show("lociseg adapted", str(folder), res.samples[0])
            q = res.info.get("quality", {}).get(name)
            quality = f"; estimated F1@0.5 {q['quality']:.2f} (no label used)" if q else ""
            self._say(
                f"adapted model saved in {folder} ({res.train['step']} steps){quality}; paint corrections and fine-tune"
            )

        self._start(work, done)

    # ------------------------------------------------------------------ fine-tune
    def finetune(self, *_) -> None:
        """Fine-tune on the cells corrected in the chosen result layer (worker thread)."""
        from ..train.corrections import corrections_from_edit, finetune_on_corrections

        layer_name = self.corrected.value
        if self._run is None or not layer_name or layer_name not in self.viewer.layers:
            self._say("adapt first, then paint corrections on the result", error=True)
            return
        model, output = self._outputs[layer_name]
        try:
            corrected, reviewed = corrections_from_edit(output, np.asarray(self.viewer.layers[layer_name].data))
        except LociError as exc:
            self._say(str(exc), error=True)
            return
        n = len(np.unique(corrected)) - 1
        if n == 0:
            self._say("no corrected cell: paint on the result layer first", error=True)
            return
        run = self._run
        out = next_free_folder(run["folder"], "finetune")
        minutes, steps, rest = self.minutes.value, self.steps.value or None, self.rest.value

        def work():
            return finetune_on_corrections(
                [(run["name"], run["image"])],
                {run["name"]: (corrected, reviewed)},
                run["folder"],
                out,
                init=model,
                minutes=minutes,
                steps=steps,
                progress=False,
                callback=self._callback,
                rest=rest,
            )

        def done(res: FinetuneRun) -> None:
            if res.interrupted:
                self._say(f"cancelled; what was done is kept in {out}")
                return
            self._show(f"lociseg {out.name}", str(out), res.samples[0])
            self._say(f"fine-tuned on {n} corrected cell(s): model saved in {out}")

        self._start(work, done)

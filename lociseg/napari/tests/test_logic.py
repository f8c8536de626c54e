"""GUI-free plugin logic: reader of lociseg outputs, weak-annotation edits round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from lociseg.errors import InputError
from lociseg.napari import logic
from lociseg.napari._reader import get_reader


@pytest.fixture
def seg_output(tmp_path):
    from lociseg.predict.outputs import write_outputs
    from lociseg.predict.table import cell_table

    labels = np.zeros((30, 40), np.uint16)
    labels[2:10, 3:12] = 1
    labels[15:25, 20:33] = 2
    return write_outputs(tmp_path, "img", labels, cell_table(labels, np.array([0.9, 0.7]))), labels


def test_reader_labels_and_points(seg_output, tmp_path):
    paths, labels = seg_output
    for p in (paths["meta"], paths["labels"]):  # the sidecar (what napari hands the reader) or the TIFF
        ((data, kw, kind),) = logic.read_output(p)
        assert kind == "labels" and np.array_equal(data, labels)
        np.testing.assert_allclose(kw["features"]["score"], [0.9, 0.7])
        # napari ties row i to label i unless there is an 'index' column
        np.testing.assert_array_equal(kw["features"]["index"], [1, 2])
    ((data, kw, kind),) = get_reader(str(paths["meta"]))(str(paths["meta"]))
    assert kind == "labels" and np.array_equal(data, labels)
    ((pts, kw, kind),) = logic.read_output(paths["table"])
    assert kind == "points" and pts.shape == (2, 2)
    np.testing.assert_allclose(pts[1], [19.5, 26.0])
    # other JSON, or a sidecar without its TIFF, is left to other readers
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert get_reader(str(other)) is None and get_reader([str(paths["meta"])] * 2) is None
    # so is another JSON named like the outputs: the sidecar is img.lociseg.json
    (tmp_path / "img.json").write_text('{"columns": []}')
    assert get_reader(str(tmp_path / "img.json")) is None
    paths["labels"].unlink()
    assert get_reader(str(paths["meta"])) is None


def test_labels_features_index_is_the_label():
    feats = logic.labels_features({"label": np.array([3, 5]), "area": np.array([10, 20])})
    assert list(feats) == ["index", "label", "area"] and feats["index"].tolist() == [3, 5]
    with pytest.raises(InputError, match="no 'label' column"):
        logic.labels_features({"area": np.array([1])})


def _offered(path: Path) -> bool:
    """Whether npe2 offers lociseg's reader for ``path`` (the list napari's File > Open picks from)."""
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install 'lociseg[napari]')")
    pm = npe2.PluginManager()  # only lociseg's manifest: other plugins' claims do not matter here
    pm.register(npe2.PluginManifest.from_file(Path(logic.__file__).parent / "napari.yaml"))
    return any(r.plugin_name == "lociseg" for r in pm.iter_compatible_readers(str(path)))


def test_npe2_offers_lociseg_only_for_its_sidecars(seg_output, tmp_path):
    """Claiming *.json (or *.tif) would put lociseg in napari's 'Choose reader' dialog for every such file."""
    paths, _ = seg_output
    assert paths["meta"].name == "img.lociseg.json" and _offered(paths["meta"])
    assert _offered(tmp_path / "IMG.LOCISEG.JSON")  # npe2 matches case-insensitively
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert not any(_offered(p) for p in (other, paths["labels"], paths["table"], tmp_path))


def _old_style(paths: dict[str, Path]) -> Path:
    """The outputs as a lociseg before the ``.lociseg.json`` sidecar left them: ``<name>.json``."""
    return paths["meta"].rename(paths["meta"].with_name("img.json"))


def test_old_style_outputs_still_read(seg_output):
    from lociseg.predict.outputs import outputs_complete, sidecar_path

    paths, labels = seg_output
    old = _old_style(paths)
    assert sidecar_path(old.parent, "img") == old and outputs_complete(old.parent, "img")
    for p in (old, paths["labels"]):
        ((data, kw, kind),) = get_reader(str(p))(str(p))
        assert kind == "labels" and np.array_equal(data, labels) and "img.tif" in kw["metadata"]["outputs"]
    ((pts, _, kind),) = get_reader(str(paths["table"]))(str(paths["table"]))
    assert kind == "points" and pts.shape == (2, 2)
    # napari matches names only, so it no longer offers lociseg for <name>.json: renamed, the sidecar opens there
    assert not _offered(old)
    assert _offered(old.rename(paths["meta"])) and get_reader(str(paths["meta"])) is not None


@pytest.fixture
def annotated(tmp_path, data_root):
    """Real machine annotation of one BBBC018 field, as lociseg annotate writes it."""
    out = tmp_path / "ann"
    from lociseg.annotate import annotate_image, write_annotation, write_choices
    from lociseg.data import load_dataset

    s = load_dataset("bbbc018@test", root=data_root, channels=["DNA", "actin"])[0]
    ann = annotate_image(s.image[0], s.image[1])
    write_annotation(out, s.name, ann.points, ann.foreground, {"auto_index": ann.auto_index}, candidates=ann.candidates)
    write_choices(
        out / "choices.csv",
        [
            {
                "name": s.name,
                "chosen_index": ann.chosen_index,
                "auto_index": ann.auto_index,
                "threshold": ann.thresholds[ann.chosen_index],
            }
        ],
    )
    return out, s.name, ann


def test_edit_round_trip_is_what_annotate_reads(annotated):
    from lociseg.annotate.sheet import read_choices
    from lociseg.annotate.store import read_annotation

    out, name, ann = annotated
    assert logic.list_annotations(out) == [name]
    edit = logic.load_annotation(out, name)
    assert edit.chosen_index == ann.chosen_index and len(edit.candidates) == len(ann.candidates)
    np.testing.assert_allclose(edit.points, ann.points, atol=0.01)
    new = (ann.chosen_index + 1) % len(ann.candidates)
    edit.chosen_index = new
    edit.points = np.vstack([edit.points[1:], [[5.0, 7.0]]])  # remove one, add one
    logic.save_annotation(out, edit)
    pts, fg = read_annotation(out, name)
    np.testing.assert_allclose(pts, edit.points, atol=0.01)
    assert np.array_equal(fg, ann.candidates[new])
    row = read_choices(out / "choices.csv")[name]
    assert row["chosen_index"] == new and row["auto_index"] == ann.auto_index  # an override lociseg annotate keeps
    edit.chosen_index = 99
    with pytest.raises(InputError, match="out of range"):
        logic.save_annotation(out, edit)


def test_manifest_commands_resolve():
    manifest = yaml.safe_load((Path(logic.__file__).parent / "napari.yaml").read_text())
    import importlib

    commands = manifest["contributions"]["commands"]
    assert {cmd["id"] for cmd in commands} == {
        "lociseg.get_reader",
        "lociseg.segment_widget",
        "lociseg.annotation_widget",
        "lociseg.adapt_widget",
        "lociseg.sample_bbbc018",
    }
    for cmd in commands:
        module, attr = cmd["python_name"].split(":")
        if module.endswith("_widgets"):
            pytest.importorskip("magicgui", reason="magicgui not installed (pip install 'lociseg[napari]')")
        assert callable(getattr(importlib.import_module(module), attr)), cmd["id"]


def test_manifest_is_valid_npe2():
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install 'lociseg[napari]')")
    pm = npe2.PluginManifest.from_file(Path(logic.__file__).parent / "napari.yaml")
    assert pm.name == "lociseg"
    assert {w.display_name for w in pm.contributions.widgets} == {
        "Segment cells",
        "Weak annotations",
        "Adapt to these images",
    }
    assert pm.contributions.readers[0].command == "lociseg.get_reader"


def test_napari_extra_uses_a_supported_qt_binding():
    """napari warns on every start that PyQt5 is deprecated: the extra installs PyQt6."""
    tomllib = pytest.importorskip("tomllib", reason="Python < 3.11")
    pyproject = Path(logic.__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["napari"]
    napari_req = next(r for r in extra if r.startswith("napari"))
    assert "pyqt6" in napari_req.lower() and not any("pyqt5" in r.lower() for r in extra)


def test_run_folders_are_never_reused(tmp_path):
    from lociseg.napari.logic import holds_run, next_free_folder, safe_name

    assert not holds_run(tmp_path) and not holds_run(tmp_path / "missing")
    (tmp_path / "log.csv").write_text("step\n")
    assert holds_run(tmp_path)
    assert next_free_folder(tmp_path, "finetune") == tmp_path / "finetune-1"
    (tmp_path / "finetune-1").mkdir()
    assert next_free_folder(tmp_path, "finetune") == tmp_path / "finetune-2"
    assert safe_name("plate 1/A01 (actin)") == "plate_1_A01_actin" and safe_name("..") == "image"


def test_assign_layers_leaves_an_optional_input_to_a_named_layer_only():
    from lociseg.napari.logic import assign_layers, optional_inputs

    assert optional_inputs("cells") == ["nucleus"]
    assert assign_layers(["cell", "nucleus"], ["phase"], ["nucleus"]) == ["phase", None]
    assert assign_layers(["cell", "nucleus"], ["img"], ["nucleus"]) == ["img", None]
    assert assign_layers(["cell", "nucleus"], ["img", "DAPI"], ["nucleus"]) == ["img", "DAPI"]
    assert assign_layers(["cell", "nucleus"], ["a", "b"], ["nucleus"]) == ["a", "b"]  # unnamed: in order
    assert assign_layers(["cell", "nucleus"], ["phase", "actin"], ["nucleus"]) == ["phase", None]

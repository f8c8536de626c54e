"""What counts as a correction, and stopping a run from another thread."""

import numpy as np
import pytest

from lociseg.errors import InputError
from lociseg.train.corrections import corrections_from_edit


def _model_output() -> np.ndarray:
    lab = np.zeros((20, 30), np.int32)
    lab[2:8, 2:8], lab[2:8, 10:16], lab[12:18, 2:8], lab[12:18, 20:28] = 1, 2, 3, 4
    return lab


def test_untouched_cells_are_not_corrections():
    lab = _model_output()
    corrected, reviewed = corrections_from_edit(lab, lab.copy())
    assert not corrected.any() and not reviewed.any()


def test_split_add_erase_and_trim_each_count():
    lab = _model_output()
    edit = lab.copy()
    edit[2:5, 2:8] = 9  # split cell 1: the upper half is a new cell 9, the rest stays 1
    edit[12:18, 12:16] = 5  # a new cell painted on background
    edit[edit == 3] = 0  # erase cell 3
    edit[2:8, 15] = 0  # trim cell 2's right column
    corrected, reviewed = corrections_from_edit(lab, edit)
    assert set(np.unique(corrected)) == {0, 1, 2, 5, 9}  # cell 4 was left as drawn
    assert np.array_equal(corrected[corrected > 0], edit[corrected > 0])
    assert reviewed[12:18, 2:8].all() and corrected[12:18, 2:8].max() == 0  # erased: reviewed background
    assert reviewed[2:8, 15].all() and not reviewed[lab == 4].any()
    assert np.array_equal(reviewed, (edit != lab) | (corrected > 0))


def test_a_neighbour_painted_over_is_corrected_too():
    lab = _model_output()
    edit = lab.copy()
    edit[2:8, 8:12] = 1  # cell 1 grows over background and over part of cell 2
    corrected, _ = corrections_from_edit(lab, edit)
    assert set(np.unique(corrected)) == {0, 1, 2}
    with pytest.raises(InputError):
        corrections_from_edit(lab, edit[:, :10])


def test_on_step_stops_the_run_after_that_step(tmp_path, rng):
    from lociseg.train.config import ExperimentConfig
    from lociseg.train.loop import train

    labels = np.zeros((64, 64), np.int32)
    labels[8:30, 8:30], labels[34:60, 30:60] = 1, 2
    image = rng.random((2, 64, 64)).astype(np.float32) + (labels > 0)
    cfg = ExperimentConfig().override(
        {
            "data.crop_size": 64,
            "data.diameter": 24.0,
            "optim.steps": 50,
            "optim.batch_size": 1,
            "optim.threads": 1,
            "optim.budget_minutes": 5.0,
        }
    )
    seen = []

    def on_step(s):
        seen.append(s)
        return s["step"] == 2

    res = train(cfg, tmp_path / "run", train_samples=([image], [labels]), device="cpu", progress=False, on_step=on_step)
    assert res["interrupted"] == "cancelled" and res["step"] == 2 and [s["step"] for s in seen] == [1, 2]
    assert seen[0]["steps"] == 50 and np.isfinite(seen[0]["loss"]) and seen[0]["budget_seconds"] == 300
    assert (tmp_path / "run" / "last").is_dir()  # resumable, as after Ctrl-C


def test_adapt_again_over_a_finished_run_and_finetune_refuses_to_mix_runs(data_root, tmp_path):
    """On a real 192 px crop, one step each: a finished adapt run is replaced only with overwrite (its
    segmentation too), and a fine-tuning run folder is never reused without it."""
    from lociseg.data import load_dataset
    from lociseg.train.adapt import adapt_model
    from lociseg.train.corrections import finetune_on_corrections

    image = load_dataset("bbbc018@test", root=data_root, channels=["DNA", "actin"])[0].image[:, 160:352, 160:352]
    run = {"steps": 1, "minutes": 1.0, "progress": False, "threads": 1}
    opts = {"nucleus": 0, "cytoplasm": 1, **run}
    stages = []
    res = adapt_model([("a", image)], tmp_path / "ad", callback=lambda s, f: stages.append((s, f)) and False, **opts)
    assert res.interrupted is None and res.samples[0].labels.shape == (192, 192)
    assert [s for s, _ in stages][0] == "annotate" and ("train", 1.0) in stages and stages[-1] == ("segment", 1.0)
    with pytest.raises(InputError, match="holds an adapt run"):
        adapt_model([("a", image)], tmp_path / "ad", **opts)
    res = adapt_model([("a", image)], tmp_path / "ad", overwrite=True, **opts)
    labels = res.samples[0].labels
    edit = labels.copy()
    edit[:20, :20] = labels.max() + 1  # a new cell in a corner
    fixed = {"a": corrections_from_edit(labels, edit)}
    ft = finetune_on_corrections([("a", image)], fixed, tmp_path / "ad", tmp_path / "ft", rest="weak", **run)
    assert ft.train["step"] == 1 and (tmp_path / "ft" / "segmentation" / "a.tif").is_file()
    with pytest.raises(InputError, match="holds a fine-tuning run"):
        finetune_on_corrections([("a", image)], fixed, tmp_path / "ad", tmp_path / "ft", **run)
    header = (tmp_path / "ft" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"mask_bce", "weak"} <= set(header)  # corrected cells supervised, the rest weak
    finetune_on_corrections([("a", image)], fixed, tmp_path / "ad", tmp_path / "ft3", **run)  # rest: targets
    header = (tmp_path / "ft3" / "log.csv").read_text().splitlines()[0].split(",")
    assert "mask_bce" in header and "weak" not in header  # all supervised: targets with the corrections in
    with pytest.raises(InputError, match="not one of the adapt run's images"):
        finetune_on_corrections([("b", image)], {}, tmp_path / "ad", tmp_path / "ft2", **run)


def test_paste_corrections_replaces_the_reviewed_pixels_of_the_targets():
    from lociseg.train.corrections import paste_corrections

    target = _model_output()
    edit = target.copy()
    edit[2:5, 2:8] = 9  # split cell 1
    edit[target == 3] = 0  # erase cell 3
    corrected, reviewed = corrections_from_edit(target, edit)
    out = paste_corrections(target, corrected, reviewed)
    assert not (out[12:18, 2:8]).any()  # erased
    assert np.array_equal(out[target == 4], target[target == 4])  # untouched target cell kept
    halves = {int(out[3, 3]), int(out[6, 3])}
    assert len(halves) == 2 and min(halves) > target.max()  # both halves new ids, above the targets'
    assert set(np.unique(out)) == {0, 2, 4} | halves

"""Batch annotation: one record per image, one rule that refuses an image, the tables written."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.annotate import annotate_folder, check_stains, image_sources, read_annotation, read_choices
from lociseg.errors import ConfigError, InputError


def _cells(rng, n: int = 3) -> np.ndarray:
    """(2, 96, 96) nucleus, cytoplasm: ``n`` round cells on a noisy background."""
    yy, xx = np.mgrid[:96, :96]
    dna, actin = rng.normal(100, 2, (2, 96, 96))
    for cy, cx in [(25, 25), (25, 70), (70, 45)][:n]:
        r = np.hypot(yy - cy, xx - cx)
        dna += 2000 * (r < 7)
        actin += 1500 * (r < 15)
    return np.stack([dna, actin]).astype(np.float32)


def test_check_stains_refuses_what_cannot_be_annotated(rng):
    good = _cells(rng)
    assert check_stains(good, 30.0) == (30.0, False)
    blank = good.copy()
    blank[1] = 7
    with pytest.raises(InputError, match="cytoplasm channel is blank"):
        check_stains(blank, 30.0)
    nan = good.copy()
    nan[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="nuclear channel has values that are not finite"):
        check_stains(nan, 30.0)
    with pytest.raises(InputError, match="a nuclear and a cytoplasm channel"):
        check_stains(good[:1], 30.0)
    one_spot = good.copy()
    one_spot[0] = 100
    one_spot[0, 5, 5] = 4000  # one hot pixel: nothing nucleus-sized
    with pytest.raises(InputError, match="no nuclei found"):
        check_stains(one_spot)  # the scale is measured: too few nuclei to measure it on
    assert check_stains(one_spot, 30.0) == (30.0, False)  # a given scale annotates it anyway
    d, estimated = check_stains(good)
    assert estimated and 10 < d < 60


def test_annotate_folder_records_each_image_and_refuses_the_bad_ones(rng, tmp_path):
    good = _cells(rng)
    blank = good.copy()
    blank[1] = 0
    ramp = np.tile(np.linspace(100, 110, 96, dtype=np.float32), (96, 1))
    no_cells = np.stack([ramp, good[1]])  # a nuclear stain without a nucleus: no point, so no cell
    sources, notes = image_sources([("good", good), ("blank", blank), ("none", no_cells), ("good", good)], [0, 1])
    assert [s.name for s in sources] == ["good", "blank", "none", "good-2"] and len(notes) == 1
    seen = []
    run = annotate_folder(
        sources,
        tmp_path,
        nucleus=0,
        cytoplasm=1,
        diameter=30.0,
        keep_arrays=True,
        progress=False,
        cancel=lambda f: seen.append(f) and False,
    )
    assert run.interrupted is None and seen == [0.0, 0.25, 0.5, 0.75]
    assert [r.name for r in run.annotated] == ["good", "good-2"]
    assert run.refused["blank"] == "the cytoplasm channel is blank (one value everywhere)"
    assert run.refused["none"] == "the annotation found no cells"
    rec = run.annotated[0]
    assert rec.diameter == 30.0 and not rec.diameter_estimated and rec.quality["n_points"] == 3
    assert rec.cells.max() == 3 and rec.image.shape == (2, 96, 96)
    assert all(p.is_file() for p in rec.outputs) and {p.name for p in rec.outputs} >= {
        "good.points.csv",
        "good.cells.tif",
    }
    assert len(read_annotation(tmp_path, "good")[0]) == 3 and not (tmp_path / "blank.points.csv").exists()
    assert set(read_choices(tmp_path / "choices.csv")) == {"good", "good-2"}
    assert (tmp_path / "report.json").is_file()
    # read back instead of annotated again, and a stop before the first image
    again = annotate_folder(sources[:1], tmp_path, nucleus=0, cytoplasm=1, diameter=30.0, reuse=True, progress=False)
    assert again.records[0].reused and again.records[0].image is None  # arrays only with keep_arrays
    stopped = annotate_folder(sources, tmp_path / "s", nucleus=0, cytoplasm=1, progress=False, cancel=lambda f: True)
    assert stopped.interrupted == "cancelled" and stopped.records == []


def test_bad_options_stop_before_any_image(tmp_path, rng):
    sources, _ = image_sources([("a", _cells(rng))], [0, 1])
    with pytest.raises(ConfigError, match="--rule"):
        annotate_folder(sources, tmp_path, nucleus=0, cytoplasm=1, rule="nope")
    with pytest.raises(ConfigError, match="--diameter"):
        annotate_folder(sources, tmp_path, nucleus=0, cytoplasm=1, diameter=float("nan"))
    with pytest.raises(ConfigError, match="labelled data set"):
        image_sources([("a", _cells(rng))], [0, 1], gt=True)

"""Rounds of ``lociseg adapt``: a round is kept only when the label-free quality estimate rose."""

from __future__ import annotations

import json
import math

import pytest

from lociseg.errors import InputError
from lociseg.train.adapt_rounds import MIN_GAIN, adapt_rounds, better_round, mean_quality


def test_mean_quality_and_the_keep_rule():
    info = {"quality": {"a": {"quality": 0.6}, "b": {"quality": 0.8}}}
    assert mean_quality(info) == pytest.approx(0.7)
    assert math.isnan(mean_quality({}))
    assert better_round(float("nan"), 0.5)  # the first round is always kept
    assert better_round(0.7, 0.7 + 2 * MIN_GAIN)
    assert not better_round(0.7, 0.7 + MIN_GAIN / 2)  # within noise: the earlier model stays
    assert not better_round(0.7, 0.6)
    assert not better_round(0.7, float("nan"))


def test_rounds_must_be_positive(tmp_path):
    with pytest.raises(InputError):
        adapt_rounds([], tmp_path, rounds=0)


@pytest.mark.slow
def test_two_rounds_on_real_crops(data_root, tmp_path):
    from lociseg.data import load_dataset

    ds = load_dataset("bbbc018@test", channels=["DNA", "actin"])
    images = [(n, ds[n].image[:, 128:384, 128:384]) for n in ds.names[:2]]
    res = adapt_rounds(images, tmp_path, rounds=2, minutes=1, steps=1, nucleus=0, cytoplasm=1, progress=False)
    saved = json.loads((tmp_path / "rounds.json").read_text())
    assert saved["rounds"][0]["kept"] and saved["rounds"][0]["steps"] == 1
    assert len(saved["rounds"]) == 2  # round 1 is always kept, so round 2 always runs
    kept = [r for r in saved["rounds"] if r["kept"]]
    assert saved["best"] == kept[-1]["folder"] == res["best"]
    # round 2 started from round 1's model
    assert "round1" in json.loads((tmp_path / "round2" / "adapt.json").read_text())["init"]

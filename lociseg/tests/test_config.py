from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from lociseg.config import Config, bounded
from lociseg.errors import ConfigError


@dataclass
class Inner(Config):
    size: int = 3
    weights: tuple[float, float, float] = (1.0, 1.0, 10.0)


@dataclass
class Outer(Config):
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    specs: list[str] = field(default_factory=lambda: ["bbbc018"])
    budget: float | None = None


def test_yaml_round_trip(tmp_path):
    cfg = Outer(name="y", mode="b", lr=0.01, inner=Inner(size=5, weights=(1.0, 2.0, 3.0)), budget=2.5)
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    back = Outer.from_yaml(path)
    assert back == cfg
    assert isinstance(back.inner.weights, tuple)


def test_int_accepted_for_float_and_unknown_key_rejected():
    assert Outer.from_dict({"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match="unknown option"):
        Outer.from_dict({"lrr": 1})
    with pytest.raises(ConfigError, match="not one of"):
        Outer.from_dict({"mode": "c"})
    with pytest.raises(ConfigError, match="expected an integer"):
        Outer.from_dict({"inner": {"size": "big"}})


def test_override_dotted_keys():
    cfg = Outer().override({"inner.size": 7, "budget": 1.0})
    assert cfg.inner.size == 7 and cfg.budget == 1.0
    with pytest.raises(ConfigError):
        Outer().override({"inner.nope": 1})


@dataclass
class Ranged(Config):
    steps: int = bounded(10, ge=1)
    crop: int = bounded(64, ge=32, multiple_of=32)
    low: float = bounded(0.2, ge=0, le=1)
    high: float = bounded(0.8, ge=0, le=1)
    gap: float | None = bounded(None, gt=0)

    def validate(self, where: str = "") -> None:
        if self.low >= self.high:
            raise ConfigError("low must be < high")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"crop": 48}, "crop must be >= 32 and a multiple of 32, got 48"),
        ({"low": 1.5}, "low must be >= 0 and <= 1, got 1.5"),
        ({"gap": 0}, "gap must be > 0"),
        ({"low": 0.9}, "low must be < high"),
        ({"low": float("nan")}, "expected a finite number"),
    ],
)
def test_bounded_fields_are_checked_on_load_and_override(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Ranged.from_dict(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Ranged().override(change)
    assert Ranged.from_dict({"gap": None, "steps": 1, "crop": 96}).crop == 96


def test_from_yaml_refuses_missing_paths_and_folders(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        Outer.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        Outer.from_yaml(str(tmp_path / "missing.yaml"))  # not parsed as the YAML scalar it also is
    with pytest.raises(ConfigError, match="folder"):
        Outer.from_yaml(tmp_path)
    assert Outer.from_yaml("lr: 0.5").lr == 0.5  # one-line YAML text still works

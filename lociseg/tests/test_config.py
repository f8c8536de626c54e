from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from lociseg.config import Config
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
    budget: Optional[float] = None


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

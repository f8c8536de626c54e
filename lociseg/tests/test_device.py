"""The one device chooser."""

from __future__ import annotations

import pytest
import torch

from lociseg.device import choose_device, mps_available
from lociseg.errors import ConfigError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert choose_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert choose_device("auto") == torch.device("cpu")


def test_explicit_devices(monkeypatch):
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("cuda:1") == torch.device("cuda", 1)


def test_unavailable_or_unknown_devices_are_one_line_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(ConfigError, match="MPS is not available"):
        choose_device("mps")
    assert not mps_available()
    for bad in ("gpu", "meta", ""):
        with pytest.raises(ConfigError, match="unknown device") as err:
            choose_device(bad)
        assert "\n" not in str(err.value)

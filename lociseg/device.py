"""The one place that turns a ``--device`` choice into a :class:`torch.device`."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["choose_device", "mps_available"]


def mps_available() -> bool:
    """Whether Apple's Metal (MPS) backend can run here (older torch builds lack it)."""
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def choose_device(name: str | torch.device = "auto") -> torch.device:
    """The device to run on.

    Parameters
    ----------
    name : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        An unknown name, or a device that is not available here.
    """
    if str(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {str(name)!r} (use auto, cpu, cuda or mps)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(name)!r} requested but no CUDA GPU is available")
    if dev.type == "mps" and not mps_available():
        raise ConfigError(f"device {str(name)!r} requested but MPS is not available")
    return dev

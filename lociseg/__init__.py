"""lociseg: segment every cell in microscopy images, trainable without manual labels.

The flat API mirrors scikit-image: functions on NumPy arrays, grouped by
concern in sub-packages (``io``, ``data``, ``annotate``, ``models``,
``losses``, ``train``, ``predict``, ``metrics``). The most used entry points
are re-exported here lazily so ``import lociseg`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "lociseg.predict.api",
    "segment": "lociseg.predict.api",
    "read_image": "lociseg.io",
    "read_labels": "lociseg.io",
    "write_labels": "lociseg.io",
    "load_dataset": "lociseg.data",
    "evaluate": "lociseg.metrics",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lociseg' has no attribute {name!r}")

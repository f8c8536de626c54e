"""npe2 reader: lociseg segmentation outputs (``<name>.lociseg.json``, the sidecar of a label TIFF and cell CSV)."""

from __future__ import annotations

from .logic import is_lociseg_output, read_output


def get_reader(path):
    """Return a reader for a lociseg output file, or None so napari tries other readers."""
    if isinstance(path, list):
        return None if len(path) != 1 else get_reader(path[0])
    return read_output if is_lociseg_output(path) else None

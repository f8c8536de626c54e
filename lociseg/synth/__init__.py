"""Synthetic training data: cut real cells out and paste them onto synthetic background.

See :func:`cut_paste_synthesize` and :func:`extend_dataset`; ``lociseg synth``
is the command-line front end.
"""

from .cutpaste import (
    CellPatch,
    cut_paste_synthesize,
    extend_dataset,
    extract_cells,
    iter_cut_paste,
    synthesize_background,
    weak_annotations,
)

__all__ = [
    "CellPatch",
    "cut_paste_synthesize",
    "extend_dataset",
    "extract_cells",
    "iter_cut_paste",
    "synthesize_background",
    "weak_annotations",
]

"""npe2 sample data: a BBBC018 field from the shared data (clear error when absent)."""

from __future__ import annotations


def bbbc018_sample():
    """Actin and DNA channels of one BBBC018 test field, with its hand-drawn cell labels."""
    from ..data import load_dataset

    s = load_dataset("bbbc018@test")[0]
    return [
        (s.image[0], {"name": f"{s.name} actin", "colormap": "green", "blending": "additive"}, "image"),
        (s.image[1], {"name": f"{s.name} DNA", "colormap": "blue", "blending": "additive"}, "image"),
        (s.labels, {"name": f"{s.name} cells (ground truth)", "opacity": 0.4}, "labels"),
    ]

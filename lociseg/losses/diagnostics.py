"""Health statistics of predicted masks against weak annotations (points + foreground).

Weak losses have degenerate optima a run can slide into: every mask
empty (the background and overlap terms win), masks far larger than cells
(coverage wins, often with masks covering several cells), or masks piled
onto a few cells, leaving most of the foreground uncovered. None shows in
the loss curve clearly; all show in these statistics, which
:class:`lociseg.train.diagnostics.CollapseMonitor` watches during training.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ops.windows import paste_soft, window_coords
from ..transforms import point_spacing
from .weak import DEFAULT_SPACING

__all__ = ["weak_diagnostics"]


@torch.no_grad()
def weak_diagnostics(
    masks: torch.Tensor,
    origins: torch.Tensor,
    points: torch.Tensor | np.ndarray,
    foreground: torch.Tensor | None = None,
    *,
    from_logits: bool = True,
    empty_area: float = 0.02,
) -> dict[str, float]:
    """Summary statistics of one image's predicted masks under weak supervision.

    Parameters
    ----------
    masks : (N, h, w) tensor
        Mask logits (or probabilities with ``from_logits=False``).
    origins : (N, 2) int tensor
    points : (N_p, 2)
        Annotated cell locations (y, x); their spacing sets the cell scale.
    foreground : (H, W) tensor, optional
        Foreground map; required for ``coverage``. Also gives the image shape;
        without it the shape is the extent of the windows.
    empty_area : float
        A mask is empty when its area is below this fraction of spacing².

    Returns
    -------
    dict of float
        ``n``: instances; ``mean_area``: mean soft area (px) inside the image;
        ``spacing2``: squared point spacing (px²);
        ``area_ratio``: mean_area / spacing2 (a packed cell is ~0.7-1);
        ``coverage``: fraction of foreground covered by some mask (> 0.5);
        ``overlap``: fraction of covered pixels covered by two or more masks;
        ``empty_fraction``: fraction of masks with area < empty_area * spacing2.
    """
    y = torch.sigmoid(masks.float()) if from_logits else masks.float()
    spacing = point_spacing(points, DEFAULT_SPACING)
    s2 = spacing * spacing
    n = int(y.shape[0])
    out = {"n": float(n), "spacing2": s2}
    if foreground is not None:
        shape = tuple(foreground.shape[-2:])
    else:
        o = origins.long()
        shape = (
            int((o[:, 0].max() + y.shape[1]).clamp_min(1)) if n else 1,
            int((o[:, 1].max() + y.shape[2]).clamp_min(1)) if n else 1,
        )
    if n == 0:
        out.update(mean_area=0.0, area_ratio=0.0, coverage=0.0, overlap=0.0, empty_fraction=1.0)
        return out
    # Window pixels outside the image get no gradient and keep their initial ~0.5: counted, they
    # gave a collapsed mask at a crop's edge an area of hundreds of px and hid the collapse.
    _, _, inside = window_coords(origins, tuple(y.shape[-2:]), shape)
    y = y * inside.to(y.dtype)
    area = y.flatten(1).sum(1)
    count = paste_soft((y > 0.5).float(), origins, shape)
    covered = count > 0
    out["mean_area"] = float(area.mean())
    out["area_ratio"] = float(area.mean()) / s2
    out["empty_fraction"] = float((area < empty_area * s2).float().mean())
    out["overlap"] = float((count > 1).sum()) / max(int(covered.sum()), 1)
    if foreground is not None:
        fg = foreground > 0.5
        out["coverage"] = float((covered & fg).sum()) / max(int(fg.sum()), 1)
    else:
        out["coverage"] = float("nan")
    return out

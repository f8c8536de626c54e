"""Windows placed in an image: read what lies under them, paste values back.

A window is an ``(h, w)`` block whose top-left pixel sits at an image
coordinate ``origin`` (y, x); it may reach outside the image. Every model,
loss and paster that crops a window around a location uses these.
"""

from __future__ import annotations

import torch

__all__ = ["window_coords", "gather_windows", "paste_soft", "clip_window"]


def window_coords(origins: torch.Tensor, window: tuple[int, int], shape: tuple[int, int]):
    """Image coordinates of every window pixel and whether it lies inside the image.

    Parameters
    ----------
    origins : (N, 2) int tensor
        Window top-left corners (y, x) in image pixels.
    window : (h, w)
        Window size.
    shape : (H, W)
        Image size.

    Returns
    -------
    yy, xx : (N, h, w) long tensors
        Pixel coordinates, clamped into the image (use ``inside`` to mask).
    inside : (N, h, w) bool tensor
        True where the window pixel is inside the image.
    """
    h, w = window
    H, W = shape
    origins = origins.long()
    dev = origins.device
    yy = origins[:, 0, None, None] + torch.arange(h, device=dev)[None, :, None]
    xx = origins[:, 1, None, None] + torch.arange(w, device=dev)[None, None, :]
    yy, xx = torch.broadcast_tensors(yy, xx)
    inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
    return yy.clamp(0, H - 1), xx.clamp(0, W - 1), inside


def paste_soft(
    masks: torch.Tensor, origins: torch.Tensor, shape: tuple[int, int], *, reduce: str = "sum"
) -> torch.Tensor:
    """Differentiably place window masks onto an image-sized canvas.

    Parameters
    ----------
    masks : (N, h, w) tensor
        Per-instance window values (probabilities, edge maps, ...).
    origins : (N, 2) int tensor
        Window top-left corners (y, x); parts outside the image are dropped.
    shape : (H, W)
        Canvas size.
    reduce : {"sum", "none"}
        ``"sum"``: one (H, W) canvas, overlapping windows add up.
        ``"none"``: (N, H, W), one canvas per instance (memory N*H*W).

    Returns
    -------
    tensor
        (H, W) or (N, H, W), same dtype and device as ``masks``; gradients
        flow back to ``masks``.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, h, w), got shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    H, W = shape
    yy, xx, inside = window_coords(origins, (h, w), (H, W))
    vals = masks[inside]
    if reduce == "sum":
        canvas = masks.new_zeros((H, W))
        return canvas.index_put((yy[inside], xx[inside]), vals, accumulate=True)
    if reduce == "none":
        nn_ = torch.arange(n, device=masks.device)[:, None, None].expand(n, h, w)
        canvas = masks.new_zeros((n, H, W))
        return canvas.index_put((nn_[inside], yy[inside], xx[inside]), vals, accumulate=True)
    raise ValueError(f"reduce must be 'sum' or 'none', got {reduce!r}")


def gather_windows(
    image: torch.Tensor, origins: torch.Tensor, window: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an (..., H, W) map under every window: the inverse of :func:`paste_soft`.

    Returns ``(values, inside)``: values (..., N, h, w), 0 outside the image
    (leading dimensions, e.g. feature channels, are kept), and ``inside``
    (N, h, w).
    """
    yy, xx, inside = window_coords(origins, window, tuple(image.shape[-2:]))
    vals = image[..., yy, xx] * inside.to(image.dtype)
    return vals, inside


def clip_window(origin, window: tuple[int, int], shape: tuple[int, int]):
    """The part of a window inside the image, as NumPy-style slices.

    Parameters
    ----------
    origin : (y, x) ints
        Window top-left corner in image pixels.
    window : (h, w)
    shape : (H, W)
        Image size.

    Returns
    -------
    ((slice, slice), (slice, slice)) or None
        Image slices and the matching window slices; None when the window
        lies wholly outside the image.
    """
    oy, ox = (int(v) for v in origin)
    y0, y1 = max(oy, 0), min(oy + int(window[0]), int(shape[0]))
    x0, x1 = max(ox, 0), min(ox + int(window[1]), int(shape[1]))
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))

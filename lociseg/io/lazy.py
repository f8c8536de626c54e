"""Images read window by window: a large TIFF (:class:`LazyImage`) and an OME-Zarr image (:class:`NgffImage`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

PathLike = str | os.PathLike


class LazyImage:
    """A TIFF image as a (C, H, W) array that reads only the windows asked for.

    Indexing (``img[c, y0:y1, x0:x1]``, ``img[..., y0:y1, x0:x1]``) reads
    through tifffile's zarr store, so only the TIFF tiles or strips under
    the window are decoded; ``np.asarray(img)`` reads it all. Made by
    :func:`read_image` with ``lazy_above``.

    Parameters
    ----------
    path : path-like
    axes : str
        The series' axes as tifffile gives them (e.g. ``"CYX"``, ``"YXS"``).
    shape : tuple of int
        The series' shape.
    dtype : dtype
    z, t : int, optional
        Plane of a Z-stack or time series (as in :func:`read_image`).
    """

    def __init__(
        self,
        path: PathLike,
        axes: str,
        shape: tuple[int, ...],
        dtype: Any,
        *,
        z: int | None = None,
        t: int | None = None,
    ):
        self.path = Path(path)
        axes = axes.upper()
        if "Y" not in axes or "X" not in axes:
            raise InputError(f"TIFF series has axes {axes!r} without both Y and X", path=self.path)
        self._axes, self._shape = axes, tuple(int(n) for n in shape)
        self._fixed: dict[str, int] = {}
        for ax, index in (("T", t), ("Z", z)):
            if ax not in axes:
                if index not in (None, 0):
                    raise InputError(f"plane {ax}={index} requested but the image has no {ax} axis", path=self.path)
                continue
            n = self._shape[axes.index(ax)]
            if index is None and n != 1:
                what = "a Z-stack" if ax == "Z" else "a time series"
                raise InputError(f"{what} with {n} planes; choose one plane ({ax.lower()}=...)", path=self.path)
            index = 0 if index is None else index
            if not -n <= index < n:
                raise InputError(f"plane {ax}={index} out of range (0..{n - 1})", path=self.path)
            self._fixed[ax] = index % n
        rest = [a for a in axes if a not in "YX" and a not in self._fixed]
        big = [a for a in rest if self._shape[axes.index(a)] > 1]
        if len(big) > 1:
            raise InputError(
                f"TIFF series with axes {axes!r} has several channel-like axes; read it whole", path=self.path
            )
        for a in rest:
            if a not in big:
                self._fixed[a] = 0
        self._chan_axis = big[0] if big else None
        self.channels = list(range(self._shape[axes.index(self._chan_axis)] if big else 1))
        self.dtype = np.dtype(dtype)
        self._array = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.channels), self._shape[self._axes.index("Y")], self._shape[self._axes.index("X")])

    ndim = 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"LazyImage({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def select(self, index: Sequence[int]) -> LazyImage:
        """The same image with only the channels at ``index`` (in that order); reads nothing."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.channels = [self.channels[int(i)] for i in index]
        return out

    def __getstate__(self) -> dict[str, Any]:
        # the open zarr store stays behind: a copy sent to another process opens the file again
        return {**self.__dict__, "_array": None}

    def _zarr(self):
        if self._array is None:
            import tifffile
            import zarr

            self._array = zarr.open(tifffile.imread(self.path, aszarr=True, series=0, level=0), mode="r")
        return self._array

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) * (4 - len(key)) + key[1:]
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or any(not isinstance(k, slice) for k in key[1:]):
            raise IndexError(f"LazyImage takes [channels, y0:y1, x0:x1], got {key!r}")
        chans = np.asarray(self.channels)[key[0]]
        sel, kept = [], []
        for a in self._axes:
            if a in self._fixed:
                sel.append(self._fixed[a])
            else:
                sel.append({"Y": key[1], "X": key[2]}.get(a, np.atleast_1d(chans)))
                kept.append(a)
        data = np.asarray(self._zarr().oindex[tuple(sel)])
        order = ([kept.index(self._chan_axis)] if self._chan_axis else []) + [kept.index("Y"), kept.index("X")]
        data = np.transpose(data, order)
        if self._chan_axis is None:
            data = data[None][np.atleast_1d(chans) * 0]
        return data[0] if np.ndim(chans) == 0 else data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self[..., :, :]
        return data if dtype is None else data.astype(dtype)


def is_ngff(path: PathLike) -> bool:
    """Whether ``path`` is an OME-Zarr (NGFF) image: a folder whose zarr group attributes hold ``multiscales``."""
    p = Path(path)
    if not p.is_dir():
        return False
    for meta in (p / ".zattrs", p / "zarr.json"):
        try:
            attrs = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        attrs = attrs.get("attributes", attrs)  # zarr v3 keeps them under "attributes" (NGFF 0.5: in "ome")
        if "multiscales" in attrs or "multiscales" in attrs.get("ome", {}):
            return True
    return False


class NgffImage(LazyImage):
    """An OME-Zarr (NGFF) image's full-resolution level as a (C, H, W) array read window by window.

    Same interface as :class:`LazyImage` (``img[c, y0:y1, x0:x1]`` reads only
    the chunks under the window); ``channel_names`` come from the ``omero``
    channel labels when present. Needs ``zarr`` (``lociseg[dask]``).
    """

    def __init__(self, path: PathLike, *, z: int | None = None, t: int | None = None):
        try:
            import zarr
        except ModuleNotFoundError:
            raise InputError("reading OME-Zarr needs zarr: pip install 'lociseg[dask]'", path=path) from None
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root.attrs)
        attrs = attrs.get("ome", attrs)
        ms = attrs["multiscales"][0]
        axes = "".join((a["name"] if isinstance(a, dict) else str(a)).upper() for a in ms.get("axes", "TCZYX"))
        self._level = ms["datasets"][0]["path"]
        arr = root[self._level]
        if len(axes) != arr.ndim:
            raise InputError(f"OME-Zarr axes {axes!r} do not match its array of {arr.ndim} dimensions", path=path)
        super().__init__(path, axes, arr.shape, arr.dtype, z=z, t=t)
        labels = [c.get("label") for c in attrs.get("omero", {}).get("channels", [])]
        self.channel_names = [str(x) for x in labels] if labels and len(labels) == self.shape[0] else None

    def _zarr(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_group(str(self.path), mode="r")[self._level]
        return self._array

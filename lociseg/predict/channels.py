"""Choosing a model's input channels from an image: by index, by name, or absent optional stains."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..io import LazyImage
from ..models.base import InputSpec

__all__ = ["select_channels", "match_count", "stain_kind", "match_by_stain", "STAIN_WORDS"]

#: Words in a channel or layer name that say which stain it is, by the kind of model input they feed.
STAIN_WORDS: dict[str, tuple[str, ...]] = {
    "nucleus": ("dna", "hoechst", "dapi", "nucle", "h2b", "draq", "sytox", "pi"),
    "cytoplasm": ("actin", "phalloidin", "cyto", "cell", "membrane", "tubulin", "wga", "mask", "body", "phase", "dic"),
}


def stain_kind(name: str) -> str | None:
    """``"nucleus"`` or ``"cytoplasm"`` for a channel or layer name that says so, else None."""
    low = name.lower()
    for kind, words in STAIN_WORDS.items():
        if any(w in low for w in words if len(w) > 2) or low in words:
            return kind
    return None


def match_by_stain(model_names: Sequence[str], image_names: Sequence[str]) -> list[int] | None:
    """Image channel per model input by the kind of stain both names say (``DNA`` feeds ``nucleus``).

    None unless every input's kind is known and exactly one image channel has it: a guess is never made.
    """
    index: list[int] = []
    for name in model_names:
        kind = stain_kind(name)
        hits = [i for i, n in enumerate(image_names) if kind is not None and stain_kind(n) == kind]
        if len(hits) != 1 or hits[0] in index:
            return None
        index.append(hits[0])
    return index


def select_channels(
    spec: InputSpec,
    image: np.ndarray,
    channels: Sequence[int | str] | None = None,
    channel_names: Sequence[str] | None = None,
    *,
    channel_axis: int | None = 0,
) -> np.ndarray:
    """Return the (C, H, W) channels the model takes, in its order.

    ``channels`` picks by index or by name (names need ``channel_names``,
    the names of the image's channels). Without ``channels``, the model's
    own channel names are looked up in ``channel_names`` when given; an
    image whose channel count differs from the model's is an error,
    except identical channels (grey stored as RGB) for a 1-channel model
    and absent ``optional`` channels of the model (zero planes).
    """
    lazy = isinstance(image, LazyImage)  # (C, H, W) read on demand: select without reading
    image = image if lazy else np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3:
        if channel_axis is None:
            raise InputError(f"image has shape {image.shape}: a 3-D image needs a channel_axis")
        if not lazy:
            image = np.moveaxis(image, channel_axis, 0)
    else:
        raise InputError(f"image must be (H, W) or (C, H, W), got shape {image.shape}")
    names = [str(n).lower() for n in channel_names] if channel_names is not None else None
    if names is not None and len(names) != image.shape[0]:
        raise InputError(f"{len(names)} channel names given for an image with {image.shape[0]} channel(s)")
    if channels is None and names is not None and spec.channels:
        if all(c.lower() in names for c in spec.channels):
            channels = list(spec.channels)
        elif (by_stain := match_by_stain(spec.channels, names)) is not None:
            channels = by_stain  # e.g. a file's DNA and actin for a model's nucleus and cell inputs
    if channels is not None:
        index = []
        for c in channels:
            if isinstance(c, str) and not c.lstrip("-").isdigit():
                if names is None:
                    raise InputError(f"channel {c!r} given by name but the image's channel names are unknown")
                if c.lower() not in names:
                    raise InputError(f"no channel named {c!r}; the image has {list(channel_names)}")
                index.append(names.index(c.lower()))
            else:
                i = int(c)
                if not -image.shape[0] <= i < image.shape[0]:
                    raise InputError(f"channel index {i} out of range for an image with {image.shape[0]} channel(s)")
                index.append(i)
        image = image.select(index) if lazy else image[index]
    return match_count(spec, image, explicit=channels is not None)


def match_count(spec: InputSpec, image: np.ndarray, *, explicit: bool) -> np.ndarray:
    """The selected channels made the model's count: absent optional stains, grey stored as RGB."""
    want = int(spec.in_channels)
    if image.shape[0] < want and spec.missing_ok(image.shape[0]):
        image = np.asarray(image)  # absent optional stains: zero planes, as the model saw in training
        return np.concatenate([image, np.zeros((want - image.shape[0], *image.shape[1:]), image.dtype)])
    if image.shape[0] != want:
        if want == 1 and not explicit and all(np.array_equal(image[0], c) for c in image[1:]):
            return image[:1]  # grey image stored as RGB
        model_names = f" ({', '.join(spec.channels)})" if spec.channels else ""
        raise InputError(
            f"image has {image.shape[0]} channel(s) but the model takes {want}{model_names}; "
            "choose them with channels=[...] (--channels)"
        )
    return image

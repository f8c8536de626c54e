"""Channel selection by name or index, shared by every source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError


def resolve_channels(
    channels: Sequence[int | str] | int | str | None,
    available: Sequence[str],
    default: Sequence[str],
    aliases: dict[str, str] | None = None,
    *,
    dataset: str = "",
) -> list[int]:
    """Indices into ``available`` for channel names/indices (case-insensitive names, optional aliases)."""
    if channels is None:
        channels = default
    if isinstance(channels, (int, str)):
        channels = [c.strip() for c in channels.split(",")] if isinstance(channels, str) else [channels]
    lower = [a.lower() for a in available]
    alias = {k.lower(): v.lower() for k, v in (aliases or {}).items()}
    out = []
    for c in channels:
        if isinstance(c, str) and c.strip().lstrip("-").isdigit():
            c = int(c)
        if isinstance(c, (int, np.integer)):
            if not -len(available) <= c < len(available):
                raise ConfigError(f"{dataset}: channel index {c} out of range; channels are {list(available)}")
            out.append(int(c) % len(available))
            continue
        key = alias.get(c.lower(), c.lower())
        if key not in lower:
            raise ConfigError(f"{dataset}: no channel {c!r}; channels are {list(available)}")
        out.append(lower.index(key))
    return out

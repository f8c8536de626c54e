"""Several rounds of ``lociseg adapt``: re-segment with the adapted model, rebuild the targets, fine-tune again.

Round 1 is :func:`lociseg.train.adapt.adapt_model` from the starting model.
Round ``k`` starts from round ``k - 1``'s model: its cells and the machine
cells make the new targets (``--targets evidence`` by default, so the
adapted model now plays the model's part) and it is fine-tuned on them. A
round is kept only when the label-free quality estimate
(:func:`lociseg.annotate.evidence.quality_estimate`, mean over the images)
rose; the first round that does not improve ends the run. No label is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.files import atomic_write
from .adapt import adapt_model

__all__ = ["adapt_rounds", "mean_quality", "better_round"]

#: A later round is kept only when it raises the mean estimated quality by at least this much.
MIN_GAIN = 0.005


def mean_quality(info: dict[str, Any]) -> float:
    """Mean estimated quality over the images of an adapt run's ``adapt.json`` content (NaN when none)."""
    q = [v["quality"] for v in info.get("quality", {}).values()]
    return float(np.mean(q)) if q else float("nan")


def better_round(previous: float, current: float, min_gain: float = MIN_GAIN) -> bool:
    """Whether a round whose mean quality is ``current`` replaces one at ``previous``."""
    return bool(np.isfinite(current) and (not np.isfinite(previous) or current >= previous + min_gain))


def adapt_rounds(
    images: Sequence[str | os.PathLike | tuple[str, np.ndarray]],
    out: str | os.PathLike,
    *,
    rounds: int = 2,
    minutes: float = 15.0,
    init: str = "cells",
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Adapt in up to ``rounds`` rounds of ``minutes / rounds`` each, keeping a round only when it helped.

    Parameters
    ----------
    images
        As :func:`~lociseg.train.adapt.adapt_model`.
    out : path
        Folder: ``round1/``, ``round2/``, ... (each an adapt run folder) and
        ``rounds.json`` (per round: steps, mean quality, kept; ``best``: the
        folder of the kept model).
    rounds : int
        Most rounds (>= 1).
    minutes : float
        Budget of all rounds together, shared equally.
    init : str
        Starting model of round 1.
    overwrite : bool
        Start again over the round folders.
    **options
        Other keyword arguments of :func:`~lociseg.train.adapt.adapt_model`
        (``nucleus``, ``cytoplasm``, ``targets``, ``steps`` per round, ...).

    Returns
    -------
    dict
        ``rounds`` (one entry per round run), ``best`` (path of the kept
        run) and ``result`` (the :class:`~lociseg.train.adapt.AdaptRun` of it).
    """
    if rounds < 1:
        raise InputError(f"rounds must be at least 1, got {rounds}")
    out = Path(out)
    history: list[dict[str, Any]] = []
    best, best_q, best_res = None, float("nan"), None
    start = init
    for k in range(1, rounds + 1):
        folder = out / f"round{k}"
        res = adapt_model(images, folder, minutes=minutes / rounds, init=start, overwrite=overwrite, **options)
        q = mean_quality(res.info)
        kept = not res.interrupted and better_round(best_q, q)
        history.append(
            {"round": k, "folder": str(folder), "steps": (res.train or {}).get("step"), "quality": q, "kept": kept}
        )
        if not kept:
            break
        best, best_q, best_res, start = folder, q, res, str(folder)
    summary = {"rounds": history, "best": None if best is None else str(best)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "rounds.json", json.dumps(summary, indent=1) + "\n", overwrite=True)
    return {**summary, "result": best_res}

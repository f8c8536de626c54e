"""Health checks for weakly supervised training: catch mask collapse early.

The statistics come from the model (:meth:`SegmentationModel.diagnostics
<lociseg.models.base.SegmentationModel.diagnostics>`; for LACSS,
:func:`lociseg.losses.diagnostics.weak_diagnostics`); :class:`CollapseMonitor`
warns when they show a collapse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CollapseMonitor"]

log = logging.getLogger("lociseg.train")


@dataclass
class CollapseMonitor:
    """Warns when weak training collapses, fed a model's diagnostics (:func:`~lociseg.losses.diagnostics.weak_diagnostics`) each logging step.

    Parameters
    ----------
    empty_limit : float
        Collapse to nothing: ``empty_fraction`` at or above this.
    area_limit : float
        Runaway masks: ``area_ratio`` (mean area / spacing²) above this.
    patience : int
        Consecutive bad updates before warning (single noisy batches pass).
    repeat_every : int
        While the problem lasts, the warning repeats every this many updates.
    coverage_limit, coverage_window, coverage_from : float, int, int
        Masks left the foreground uncovered: the mean ``coverage`` of the
        last ``coverage_window`` updates from step ``coverage_from`` on is
        below ``coverage_limit`` (a single image per update is noisy, hence
        the mean). On BBBC018 healthy runs stay above 0.5 from step 1,500;
        a failed one sat at 0.2-0.35. Warned once per window.
    logger : logging.Logger, optional
        Where warnings go (default ``lociseg.train``).

    Examples
    --------
    >>> mon = CollapseMonitor(patience=1)
    >>> mon.update({"empty_fraction": 1.0, "area_ratio": 0.0}, step=500)
    'step 500: masks collapsed -- 100% of masks are empty (weak runs often start so ...'
    """

    empty_limit: float = 0.9
    area_limit: float = 3.0
    patience: int = 3
    repeat_every: int = 50
    coverage_limit: float = 0.4
    coverage_window: int = 10
    coverage_from: int = 0
    logger: logging.Logger | None = None
    history: list = field(default_factory=list)
    _bad: int = 0
    _coverage: list = field(default_factory=list)

    def check(self, diag: dict[str, float]) -> str | None:
        """The problem in one set of diagnostics, or None."""
        empty = diag.get("empty_fraction", 0.0)
        ratio = diag.get("area_ratio", 0.0)
        if empty >= self.empty_limit:
            return (
                f"masks collapsed -- {empty:.0%} of masks are empty (weak runs often start so and regrow "
                f"within ~1,500 steps); if it lasts, try another seed or check the foreground annotation"
            )
        if ratio > self.area_limit:
            return (
                f"masks far bigger than cells -- mean area {ratio:.1f}x the squared point spacing; "
                f"raise the size/background weight or check that points cover every cell"
            )
        return None

    def update(self, diag: dict[str, float], step: int | None = None) -> str | None:
        """Record ``diag``; return (and log) a warning once the problem persists ``patience`` times."""
        self.history.append(dict(diag, step=step))
        problem = self.check(diag)
        self._bad = self._bad + 1 if problem else 0
        if self._bad >= self.patience:
            # warned when it has persisted `patience` updates, then every `repeat_every` (no log flood)
            problem = problem if (self._bad - self.patience) % self.repeat_every == 0 else None
        else:
            problem = self._check_coverage(diag, step)
        if problem:
            msg = f"step {step}: {problem}" if step is not None else problem
            (self.logger or log).warning(msg)
            return msg
        return None

    def _check_coverage(self, diag: dict[str, float], step: int | None) -> str | None:
        cov = diag.get("coverage", float("nan"))
        if not np.isfinite(cov) or (step is not None and step < self.coverage_from):
            return None
        self._coverage.append(cov)
        if len(self._coverage) < self.coverage_window:
            return None
        mean = float(np.mean(self._coverage))
        self._coverage.clear()
        if mean >= self.coverage_limit:
            return None
        return (
            f"masks cover only {mean:.0%} of the foreground (mean of the last {self.coverage_window} checks) "
            f"-- they pile onto a few cells; turn on lacss.weak.territory_weight, try another seed, "
            f"or check that points cover every cell"
        )

    @property
    def collapsed(self) -> bool:
        """Whether the last ``patience`` updates were all bad."""
        return self._bad >= self.patience

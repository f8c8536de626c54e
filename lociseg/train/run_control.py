"""Run control: the run's config, the run-folder check, ``log.csv``, and the signals that stop a run cleanly."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from ..config import parse_overrides
from ..errors import ConfigError, InputError
from ..models.checkpoint import recover_checkpoint
from .config import ExperimentConfig


def run_config(
    config: Path | None,
    out: Path | None,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    init: str | None = None,
) -> ExperimentConfig:
    """The config of a run: ``config``, else (resuming) ``out/config.yaml``, else the defaults; then the overrides.

    Parameters
    ----------
    config : Path, optional
        Experiment config YAML file.
    out : Path, optional
        The run folder (need not exist; must not be a file).
    resume : bool
        Continue the run in ``out``: without ``config``, its own config is read.
    overrides : sequence of str
        ``KEY=VALUE`` items (:func:`lociseg.config.parse_overrides`).
    init : str, optional
        Start from this model's weights (fine-tuning).

    Raises
    ------
    ConfigError
        ``config`` is not a file, ``out`` is a file, or a bad override.
    """
    if config is not None and not config.is_file():
        problem = "this is a folder" if config.is_dir() else "no such file"
        raise ConfigError(f"--config must be a YAML file; {problem}", path=config)
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder (the run folder), not a file", path=out)
    if resume and config is None and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    cfg = ExperimentConfig.from_yaml(config) if config is not None else ExperimentConfig()
    if overrides:
        cfg = cfg.override(parse_overrides(overrides))
    if init is not None:
        cfg = cfg.override({"init": init})
    return cfg


#: What every run leaves in its folder: the best and the last checkpoint and the log.
RUN_FILES = ("best", "last", "log.csv")


def held_run(out: str | os.PathLike, *records: str) -> list[Path]:
    """The parts of a run that ``out`` holds: :data:`RUN_FILES` and the run's own ``records`` (``adapt.json``)."""
    return [Path(out) / n for n in (*RUN_FILES, *records) if (Path(out) / n).exists()]


def refuse_held_run(
    out: str | os.PathLike,
    what: str,
    *,
    resume: bool,
    overwrite: bool,
    resumable: bool = True,
    records: tuple[str, ...] = (),
) -> list[Path]:
    """The one run-folder check of training, adapt and fine-tuning: a folder holding a run is not mixed into.

    Parameters
    ----------
    out : path
        The run folder.
    what : str
        What the folder holds, for the message (``"an adapt run already"``).
    resume, overwrite : bool
        Going on from the run there, or starting again over it, is asked for.
    resumable : bool
        Whether the run there can be resumed (else the message offers only
        overwrite).
    records : tuple of str
        The run's own record files, held as a run too (``adapt.json``).

    Returns
    -------
    list of Path
        What of a run the folder holds (:func:`held_run`).

    Raises
    ------
    InputError
        The folder holds a run and neither ``resume`` nor ``overwrite`` is asked for.
    """
    held = held_run(out, *records)
    if held and not (resume or overwrite):
        ways = "--resume to continue it, --overwrite to start again" if resumable else "--overwrite to start again"
        raise InputError(f"holds {what}; use {ways}, or another -o", path=Path(out))
    return held


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix training runs (:func:`refuse_held_run`); resuming needs a checkpoint, overwriting clears the run."""
    has_last = recover_checkpoint(out / "last")
    if resume:
        if has_last:
            return
        if held_run(out):
            raise InputError(
                "nothing to resume: the run here stopped before its first checkpoint (last/); "
                "start again with --overwrite or choose another -o",
                path=out,
            )
        raise InputError("nothing to resume (no last/ checkpoint)", path=out)
    what = (
        "a training run already"
        if has_last
        else "a training run that stopped before its first checkpoint (nothing to resume)"
    )
    for p in refuse_held_run(out, what, resume=False, overwrite=overwrite, resumable=has_last):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


class StopSignals:
    """SIGTERM / SIGINT set ``signal`` (the loop then saves and stops); a second one raises KeyboardInterrupt.

    Handlers are only installed in the main thread (Python allows no other)
    and the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class CsvLog:
    """``log.csv`` with one row per logged step; columns may appear late (weak terms), so the
    file is rewritten when the header grows and appended to otherwise. A resumed run keeps the
    rows up to its checkpoint's step (later ones were logged after the checkpoint and are redone).
    """

    def __init__(self, path: Path, keep_until: int | None) -> None:
        self.path = path
        self.rows: list[dict] = []
        self.fields: list[str] = []
        if keep_until is not None and path.exists():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r["step"]) <= keep_until]
        self._rewrite()

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields, restval="")
            if self.fields:
                w.writeheader()
            w.writerows(self.rows)

    def write(self, row: dict) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new or not self.fields:
            self.fields += new
            self._rewrite()
            return
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, restval="").writerow(row)

"""The CLI side of the commands that work through many inputs: ``--debug``, the failure list, the exit status.

The batch pieces themselves (the output folder and its lock, unique output
names, refusing to replace files, one failure per input) are :mod:`lociseg.batch`, re-exported here for
the commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import typer

from .. import batch
from ..batch import (
    ERROR_LOG,
    LOCK_NAME,
    OutputLock,
    check_new,
    prepare_out_dir,
    remove_dead_temp_files,
    unique_names,
)
from ..errors import describe_error


def exit_if_failed(failures: Mapping[str, str] | Iterable[str]) -> None:
    """Print each failure (``input: reason``, or a ready message) to stderr and exit with status 1.

    Commands carry on past a bad input and call this last, so one broken file
    never hides the results of the others; does nothing when there were none.
    """
    lines = [f"{k}: {v}" for k, v in failures.items()] if isinstance(failures, Mapping) else list(failures)
    if not lines:
        return
    typer.echo(f"{len(lines)} failure(s):", err=True)
    for line in lines:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(1)


def debug_enabled() -> bool:
    """True with ``lociseg --debug`` or ``LOCISEG_DEBUG=1``: show tracebacks instead of one-line errors."""
    if os.environ.get("LOCISEG_DEBUG", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    ctx = _current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(obj, dict) and obj.get("debug"))


def _current_context():
    """The running command's click context, or None (typer vendors its own click in newer versions)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
    return get_current_context(silent=True)


def run_batch(
    items: Sequence[tuple[str, object]],
    fn: Callable[[object], object],
    *,
    out: Path | None = None,
    progress: str | None = None,
) -> tuple[dict[str, object], dict[str, str]]:
    """:func:`lociseg.batch.run_batch`, with the tracebacks on stderr under ``--debug``."""
    return batch.run_batch(items, fn, out=out, progress=progress, debug=debug_enabled())


__all__ = [
    "ERROR_LOG",
    "LOCK_NAME",
    "OutputLock",
    "check_new",
    "debug_enabled",
    "describe_error",
    "exit_if_failed",
    "prepare_out_dir",
    "remove_dead_temp_files",
    "run_batch",
    "unique_names",
]

"""Shared pieces of the commands that work through many inputs: the output folder, the failure list."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import typer


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


def prepare_out_dir(path: Path) -> Path:
    """Create the output folder (and parents) and check it is writable, before any work is done.

    Raises
    ------
    InputError
        The folder cannot be created or written to.
    """
    from ..errors import InputError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lociseg-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"output folder is not writable ({exc.strerror or exc})", path=path) from None
    return path

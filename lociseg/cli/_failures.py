"""The end of every command that works through many inputs: list what failed, exit 1."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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

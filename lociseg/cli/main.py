"""The ``lociseg`` entry point.

Each sub-command lives in its own module ``lociseg.cli.<name>`` exposing a
function ``main`` with typer-annotated parameters; it is registered here.
Heavy imports (torch, models) happen inside the commands, so ``--help`` is fast.
A :class:`~lociseg.errors.LociError` or ``ValueError`` raised by a command is
printed as one line (no traceback) and the process exits with status 2 (bad
input); an ``OSError`` (disk full, permission denied, ...) likewise, with
status 1. ``--debug`` or ``LOCISEG_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from ..errors import LociError

# command name -> module; modules are imported lazily at registration only.
COMMANDS: dict[str, str] = {
    "info": "lociseg.cli.info",
    "evaluate": "lociseg.cli.evaluate",
    "annotate": "lociseg.cli.annotate",
    "train": "lociseg.cli.train",
    "adapt": "lociseg.cli.adapt",
    "segment": "lociseg.cli.segment",
    "synth": "lociseg.cli.synth",
    "export": "lociseg.cli.export",
    "demo": "lociseg.cli.demo",
    "doctor": "lociseg.cli.doctor",
    "export-model": "lociseg.cli.export_model",
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time, so a handler set up under a
    captured stream (tests, notebooks) never writes to a closed file later.
    """

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _verbosity(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print warnings and errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print debugging detail."),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks instead of one-line errors (also LOCISEG_DEBUG=1)."
    ),
) -> None:
    """lociseg: single-cell segmentation trainable from machine-made annotations."""
    ctx.obj = {**(ctx.obj or {}), "debug": debug}
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", handlers=[_StderrHandler()], force=True)


def build_app() -> typer.Typer:
    """Create the typer application with every available sub-command."""
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_verbosity)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built yet
                continue
            raise
        app.command(name, help=module.main.__doc__)(module.main)
    return app


#: Words a user may put after a flag as if it took a value (``--augment true``).
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off"}


def _stray_flag_value(app: typer.Typer, argv: list[str]) -> str | None:
    """The one-line error for a boolean flag followed by a truth word, or None.

    Boolean options are flags (``--augment``, not ``--augment true``); click
    would take the word as the next positional argument (an image, a data set).
    """
    group = typer.main.get_command(app)
    words = [a for a in argv if not a.startswith("-")]
    cmd = group.commands.get(words[0]) if words and hasattr(group, "commands") else None
    params = [*group.params, *(cmd.params if cmd is not None else [])]
    flags = {o for p in params if getattr(p, "is_flag", False) for o in (*p.opts, *p.secondary_opts)}
    for prev, word in zip(argv, argv[1:]):
        if prev in flags and word.lower() in _BOOL_WORDS:
            return f"{prev} is a flag and takes no value: give {prev} alone (got '{prev} {word}')"
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (used by the console script)."""
    app = build_app()
    stray = _stray_flag_value(app, sys.argv[1:] if argv is None else list(argv))
    if stray is not None:
        typer.echo(f"error: {stray}", err=True)
        return 2
    try:
        # In non-standalone mode typer.Exit codes are returned, not raised.
        rv = app(args=argv, standalone_mode=False)
    except (LociError, OSError, ValueError) as exc:
        from ._common import debug_enabled, describe_error

        if debug_enabled() or "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        typer.echo(f"error: {describe_error(exc) if not isinstance(exc, LociError) else exc}", err=True)
        return 1 if isinstance(exc, OSError) else 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        # Usage errors arrive here in non-standalone mode; typer may vendor its own
        # copy of click, so recognise ClickException by its interface.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return rv if isinstance(rv, int) else 0


def console() -> None:
    """Console-script wrapper that turns :func:`run`'s status into the exit code."""
    sys.exit(run())


if __name__ == "__main__":
    console()

"""Exceptions that report a user's mistake (bad file, bad option) in one line.

The CLI prints :class:`LociError` messages without a traceback and exits with a
non-zero status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import re


class LociError(Exception):
    """A problem with the user's input, described in one line.

    Parameters
    ----------
    message : str
        What is wrong, phrased for the user.
    path : str or os.PathLike, optional
        The file the problem is about; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(LociError):
    """An input file is unreadable, truncated or of the wrong shape or content."""


class ConfigError(LociError):
    """A configuration or command-line option is invalid."""


def describe_error(exc: BaseException) -> str:
    """One line for a failure: lociseg's own message, the file and cause of an OS error, else the exception."""
    if isinstance(exc, LociError):
        return str(exc)
    if isinstance(exc, OSError):
        # name the file being written, not atomic_write's temporary one (.<name>.<pid>-<hex>.tmp<ending>)
        name = re.sub(r"(^|/)\.([^/]+)\.\d+-[0-9a-f]{8}\.tmp([^/]*)$", r"\1\2\3", str(exc.filename or ""))
        where = f" {name}" if name else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full while writing{where}"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"permission denied:{where}" if where else "permission denied"
        if exc.errno == errno.ELOOP:
            return f"symbolic link loop:{where}" if where else "symbolic link loop"
        return f"{exc.strerror or exc}{':' + where if where else ''}"
    return f"{type(exc).__name__}: {exc}"

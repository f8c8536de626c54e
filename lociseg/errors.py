"""Exceptions that report a user's mistake (bad file, bad option) in one line.

The CLI prints :class:`LociError` messages without a traceback and exits with a
non-zero status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os


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


class ResultWarning(UserWarning):
    """A result is known to be incomplete or doubtful (e.g. a tile held as many cells as the model reports).

    Shown to the user as a warning, never only as information.
    """

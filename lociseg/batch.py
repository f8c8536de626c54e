"""Batch runs over many inputs: the output folder and its lock, unique output names, one failure per input.

Used by every command that works through a list of images, and by
:func:`lociseg.scale_out.segment_folder`. Light on purpose (no NumPy): the
CLI imports it at start-up.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .errors import ConfigError, InputError, LociError, describe_error

log = logging.getLogger(__name__)

#: Name of the lock file :class:`OutputLock` keeps in an output folder while a command writes there.
LOCK_NAME = ".lociseg.lock"
#: Where :func:`run_batch` appends the traceback of each failed input (in the output folder).
ERROR_LOG = "lociseg-errors.log"


def prepare_out_dir(path: Path) -> Path:
    """Create the output folder (and parents) and check it is writable, before any work is done.

    Raises
    ------
    InputError
        The folder cannot be created or written to.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lociseg-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"output folder is not writable ({exc.strerror or exc})", path=path) from None
    return path


def check_new(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse to replace files that exist, unless ``overwrite``; called before any work is done.

    Raises
    ------
    InputError
        The first path that exists, with the hint to pass ``--overwrite``.
    """
    if overwrite:
        return
    for p in paths:
        if os.path.lexists(p):
            raise InputError("exists already; pass --overwrite to replace it", path=p)


#: OS errors that are about the machine, not a bug: reported in one line without a traceback.
_PLAIN_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP, errno.ENOENT)


def run_batch(
    items: Sequence[tuple[str, object]],
    fn: Callable[[object], object],
    *,
    out: Path | None = None,
    progress: str | None = None,
    debug: bool = False,
) -> tuple[dict[str, object], dict[str, str]]:
    """Call ``fn(item)`` for each ``(key, item)``; one input's exception never stops the others.

    Every exception (not KeyboardInterrupt, and not a
    :class:`~lociseg.errors.ConfigError`: a bad option stops the batch) is
    turned into one line per input; its traceback goes to ``out/lociseg-errors.log`` (or to stderr
    with ``debug``, or without ``out``) unless it is lociseg's own one-line error.

    Returns
    -------
    results, failures : dict, dict
        ``key -> fn's return value`` for the inputs that went through and
        ``key -> one-line reason`` for those that did not.
    """
    from tqdm.auto import tqdm

    results: dict[str, object] = {}
    failures: dict[str, str] = {}
    logged = False
    for key, item in tqdm(items, desc=progress, unit="file", disable=None if progress else True):
        try:
            results[key] = fn(item)
        except ConfigError:
            raise  # a bad option fails every input alike: stop at the first
        except Exception as exc:  # noqa: BLE001 - one input must not stop the batch
            # the input's own name is the key already
            failures[key] = exc.message if isinstance(exc, LociError) and exc.path == key else describe_error(exc)
            if isinstance(exc, LociError) or (isinstance(exc, OSError) and exc.errno in _PLAIN_ERRNOS):
                continue  # the one line says it all (and a full disk has no room for a log)
            text = "".join(traceback.format_exception(exc))
            if debug or out is None:
                sys.stderr.write(text)
                continue
            try:
                with open(out / ERROR_LOG, "a") as fh:
                    fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {key}\n{text}")
                logged = True
            except OSError:
                sys.stderr.write(text)
    if logged:
        sys.stderr.write(f"tracebacks of the failures are in {out / ERROR_LOG} (or run with --debug)\n")
    return results, failures


def unique_names(names: Sequence[str], sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """Output names with clashes resolved, and a note for each renamed input.

    The first input keeps its name; a later one with the same name (e.g.
    ``a.tif`` from two folders) is prefixed with its folder (``dir2__a``),
    or numbered (``a-2``) when that clashes too. Names are compared ignoring
    case, as on macOS and Windows file systems.
    """
    taken: set[str] = set()
    out: list[str] = []
    notes: list[str] = []
    for name, src in zip(names, sources):
        new = name
        if new.lower() in taken:
            folder = Path(src).parent.name
            new = f"{folder}__{name}" if folder else name
            i = 2
            while new.lower() in taken:
                new, i = f"{name}-{i}", i + 1
            notes.append(f"{src}: another input is also named {name!r}; its outputs are named {new!r}")
        taken.add(new.lower())
        out.append(new)
    return out, notes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class OutputLock:
    """A lock file in an output folder, so two runs never write there at once.

    The file (``.lociseg.lock``) is created with ``O_EXCL`` and holds the
    pid, host and command of the run; a lock whose process on this host is
    gone is stale and taken over. Released (removed) on exit. Taking it also
    removes temporary files that dead runs left behind.

    Parameters
    ----------
    folder : Path
        The output folder (must exist).
    command : str
        What is running, shown to a second run.
    """

    def __init__(self, folder: Path, command: str):
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self._held = False

    def __enter__(self) -> OutputLock:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue  # stale: removed, try again
                raise InputError(
                    f"another lociseg run is writing to this folder ({holder}); wait for it to "
                    f"finish, or remove {self.path.name} if it is not running",
                    path=self.path.parent,
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
            self._held = True
            remove_dead_temp_files(self.path.parent)
            return self
        raise InputError("could not take the output folder's lock", path=self.path)

    def _holder(self) -> str | None:
        """Who holds the lock, or None after removing a stale one."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        pid, host = info.get("pid"), info.get("host")
        if isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid):
            log.info("removing the stale lock of process %d (%s)", pid, info.get("command"))
            self.path.unlink(missing_ok=True)
            return None
        if not info:
            return f"lock file {self.path.name}"
        return f"pid {pid} on {host}: {info.get('command', '?')}, since {info.get('started', '?')}"

    def __exit__(self, *exc) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


def remove_dead_temp_files(folder: Path) -> None:
    """Remove ``.<name>.<pid>-<hex>.tmp<ending>`` files (:func:`lociseg.io.files.atomic_write`) of dead processes."""
    for p in folder.glob(".*.tmp*"):
        pid = p.name.rsplit(".tmp", 1)[0].rsplit(".", 1)[-1].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and p.is_file():
            p.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted run", p.name)

"""File-level helpers shared by every writer and folder scanner.

One atomic writer (:func:`atomic_write`), one checksum (:func:`sha256_file`)
one way to name an image or label file without its endings
(:func:`image_stem`, :data:`MASK_SUFFIXES`), and one way to list the image
files a user names (:func:`expand_inputs`).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import InputError
from .image import IMAGE_SUFFIXES, image_suffix_ok
from .lazy import is_ngff

PathLike = str | os.PathLike

__all__ = [
    "IMAGE_ENDINGS",
    "MASK_SUFFIXES",
    "atomic_write",
    "expand_inputs",
    "image_stem",
    "recover_folder",
    "sha256_file",
]

#: Name endings that mark a label image of the image with the same stem
#: (``a_masks.tif`` labels ``a.tif``). A suffix that ends with another comes first.
MASK_SUFFIXES = ("_cp_masks", "_masks", "_mask", "_labels", "_label", "_seg")

#: File endings :func:`image_stem` removes: images, OME-TIFF and text label formats.
IMAGE_ENDINGS = tuple(
    sorted(
        {".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr", *IMAGE_SUFFIXES, ".txt.gz", ".txt", ".gz"},
        key=len,
        reverse=True,
    )
)


def image_stem(path: PathLike, *, suffixes: Sequence[str] = MASK_SUFFIXES) -> str:
    """File name without its image ending and a trailing mask suffix.

    Parameters
    ----------
    path : str or path-like
        Only the file name is used.
    suffixes : sequence of str
        Name endings to drop after the file ending (the first that matches,
        case-insensitively, and leaves a non-empty name); ``()`` keeps the
        name as it is.

    Returns
    -------
    str
        ``"a"`` for ``a.ome.tif``, ``a_masks.png`` or ``A_Masks.TIF`` (as
        ``"A"``); names with an unknown ending keep it (``a.csv``).
    """
    name = Path(path).name
    lower = name.lower()
    for ending in IMAGE_ENDINGS:
        if lower.endswith(ending):
            name = name[: -len(ending)]
            break
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _temp_name(path: Path) -> Path:
    """A unique hidden name next to ``path`` with the same ending, so writers that pick the format by name still do."""
    name = path.name
    ending = next((e for e in IMAGE_ENDINGS if name.lower().endswith(e)), path.suffix)
    return path.with_name(f".{name[: len(name) - len(ending)]}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{ending}")


def atomic_write(path: PathLike, data: bytes | str | Callable[[Path], object], *, overwrite: bool = False) -> Path:
    """Write a file through a temporary file in the same folder, then rename it into place.

    Readers never see a half-written file, and a crash leaves the old file
    (or none), never a truncated one.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist.
    data : bytes, str or callable
        The content (str is written as UTF-8), or a function that writes the
        file it is given (a path with the same ending as ``path``); it may
        write a folder there instead (OME-Zarr), which is put into place the
        same way (an existing one is replaced only after the new one is whole).
    overwrite : bool
        Replace an existing file. When False the file is only created: an
        existing one is an error, checked before writing and again,
        atomically, when the file is put into place.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=path)
    tmp = _temp_name(path)
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        if tmp.is_dir() and not tmp.is_symlink():
            _put_folder(tmp, path, overwrite)
        elif overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile, unlike os.replace
            except FileExistsError:
                raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=path) from None
            except OSError:  # file systems without hard links
                os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            tmp.unlink()
    return path


def _aside(path: Path) -> Path:
    """Where :func:`_put_folder` keeps the folder it replaces until the new one is in place."""
    return path.with_name(f".{path.name}.old")


def _put_folder(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished folder ``tmp`` to ``path``; an old one is moved aside first and removed after.

    A kill between the two renames leaves the old folder at ``.NAME.old``
    and no ``NAME``: :func:`recover_folder` puts it back.
    """
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)  # fails if a non-empty folder appeared meanwhile
            return
        except OSError:
            if not overwrite:
                raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=path) from None
    elif not overwrite:
        raise InputError("exists already; pass overwrite=True (--overwrite) to replace it", path=path)
    old = _aside(path)
    if os.path.lexists(old):  # left by an interrupted swap whose NAME has since been rewritten
        _remove(old)
    os.rename(path, old)
    os.rename(tmp, path)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()


def recover_folder(path: PathLike) -> bool:
    """Finish a folder swap of :func:`atomic_write` that a kill interrupted.

    Puts ``.NAME.old`` back when ``NAME`` is missing (the kill came between
    moving the old folder aside and renaming the new one into place) and
    removes the kill's unfinished temporary folders ``.NAME.*.tmp``. Call it
    only when no other process is writing ``path``.

    Returns
    -------
    bool
        Whether a folder ``path`` is there now.
    """
    path = Path(path)
    old = _aside(path)
    if not os.path.lexists(path) and old.is_dir():
        os.replace(old, path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        _remove(tmp)
    return path.is_dir()


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their image files, not recursive) and glob patterns, in order, without repeats."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if is_ngff(p):
            found = [p]  # an OME-Zarr image is a folder
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q.is_file() and image_suffix_ok(q)) or is_ngff(q))
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).is_file())
        else:
            found = [p]  # a missing file is reported per file later
        if not found:
            raise InputError("no image files found", path=item)
        out.extend(found)
    seen: set[str] = set()
    # realpath, unlike Path.resolve, does not raise on a symbolic link loop (read_image reports it)
    return [p for p in out if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]

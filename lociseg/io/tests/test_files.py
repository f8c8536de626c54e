"""The shared atomic writer, checksum and file-name stem."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import tifffile

from lociseg.errors import InputError
from lociseg.io.files import MASK_SUFFIXES, atomic_write, image_stem, recover_folder, sha256_file


def test_atomic_write_creates_bytes_and_text(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "b.json", '{"µ": 1}\n')
    assert (tmp_path / "b.json").read_text(encoding="utf-8") == '{"µ": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json"]  # no temporary left


def test_atomic_write_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("old")
    with pytest.raises(InputError, match="exists") as err:
        atomic_write(path, "new")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_text() == "old"
    atomic_write(path, "new", overwrite=True)
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_atomic_write_refuses_a_file_that_appears_while_writing(tmp_path):
    path = tmp_path / "late.txt"

    def writer(tmp):
        tmp.write_text("mine")
        path.write_text("someone else's")  # created between the check and the rename

    with pytest.raises(InputError, match="exists"):
        atomic_write(path, writer)
    assert path.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["late.txt"]


def test_atomic_write_gives_writers_the_same_ending(tmp_path):
    seen = []

    def writer(tmp):
        seen.append(tmp)
        tifffile.imwrite(tmp, np.arange(6, dtype=np.uint8).reshape(2, 3))

    atomic_write(tmp_path / "img.ome.tif", writer)
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".") and seen[0].name.endswith(".ome.tif")
    with tifffile.TiffFile(tmp_path / "img.ome.tif") as tif:
        assert tif.is_ome  # tifffile wrote OME because the temporary name ends in .ome.tif
        np.testing.assert_array_equal(tif.asarray(), np.arange(6).reshape(2, 3))


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken, overwrite=True)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(3000)
    (tmp_path / "w").write_bytes(data)
    assert sha256_file(tmp_path / "w", chunk=1024) == hashlib.sha256(data).hexdigest() == sha256_file(tmp_path / "w")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("a.ome.tif", "a"),
        ("a.OME.TIFF", "a"),
        ("a_masks.png", "a"),
        ("a_cp_masks.tif", "a"),  # not a_cp
        ("A_Labels.TIF", "A"),
        ("x.txt.gz", "x"),
        ("img.1.npy", "img.1"),
        ("_masks.tif", "_masks"),  # never an empty stem
        ("table.csv", "table.csv"),  # unknown endings stay
        ("a_seg_masks.tif", "a_seg"),  # one suffix only
    ],
)
def test_image_stem(name, stem):
    assert image_stem(name) == stem
    assert image_stem(f"/some/dir/{name}") == stem


def test_image_stem_with_other_suffixes():
    assert image_stem("a_masks.tif", suffixes=()) == "a_masks"
    assert image_stem("a_pred.tif", suffixes=(*MASK_SUFFIXES, "_pred")) == "a"
    assert all(not s.endswith(t) for i, s in enumerate(MASK_SUFFIXES) for t in MASK_SUFFIXES[:i])


def _folder_writer(text: str):
    def write(tmp):
        tmp.mkdir()
        (tmp / "a.txt").write_text(text)

    return write


def test_atomic_write_replaces_a_folder_whole(tmp_path):
    dest = tmp_path / "ckpt"
    atomic_write(dest, _folder_writer("one"))
    atomic_write(dest, _folder_writer("two"), overwrite=True)
    assert (dest / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing aside, no temporary left


def test_recover_folder_after_a_kill_between_the_renames(tmp_path):
    dest = tmp_path / "last"
    atomic_write(dest, _folder_writer("old"))
    # a kill after the old folder went aside and before the new one was renamed into place,
    # with an unfinished temporary folder of a later kill beside it
    os.rename(dest, tmp_path / ".last.old")
    (tmp_path / ".last.123-abcd.tmp").mkdir()
    assert recover_folder(dest)
    assert (dest / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # the next write replaces it normally even if an aside folder is left over
    (tmp_path / ".last.old").mkdir()
    atomic_write(dest, _folder_writer("new"), overwrite=True)
    assert (dest / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert not recover_folder(tmp_path / "missing")

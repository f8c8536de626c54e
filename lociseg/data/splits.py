"""Fixed train / val / test splits of the shared data sets.

The splits are stored as JSON in ``lociseg/data/splits/<dataset>.json`` so
every run and every teammate uses the same lists; :func:`make_splits`
documents (and regenerates) the rules:

* ``bbbc018``: the 14 phenotype samples of four consecutive well indices
  (10779 is unlabelled and left out). In sample ``g`` (0..13, in order of
  well index) the field at position ``g % n`` goes to test and the field at
  ``(g + 1) % n`` to val (n = labelled fields of the sample, 4 or 3); the rest
  train. Rotating the position avoids always testing on the first field.
  14 test, 14 val, 27 train.
* ``koyuncu``: the source README's lists. Test = its 27 test images.
  Val = the last README training image of each cell line (23, 39). Train =
  the other 8 README training images plus the four dense images 8, 9, 10,
  22 that the README leaves out of both lists (kept out of test so test
  results compare with the papers).
* ``dsb2018-test``: all 65 stage-1 test images are ``test``.
* ``dsb2018-train``: 20 stage-1 train images; a seeded permutation
  (``numpy.random.default_rng(2018)``) of the sorted ImageIds: first 4 val,
  rest train.
* ``aitslab`` (26 two-channel fields) and ``aitslab-nuclei`` (50 nucleus
  fields, 26 of them the same fields): split by field name so a field is in
  the same split in both. The 26 shared fields: a seeded permutation
  (``numpy.random.default_rng(2023)``) of the sorted names, first 8 test,
  next 4 val, rest (14) train. The 24 nucleus-only fields: the same rule,
  7 test, 3 val, 14 train. ``aitslab-nuclei`` is the union (15 / 7 / 28).
* ``deepcell`` (13 fields of five cell lines): by field within each line.
  The last field of every line is test (BMDM and MCF10A have one field
  each, so they are test only: a line a model never trained on), HeLa-S3
  set4 is val, the rest train (3T3 set1-2, HeLa-S3 set1-3, RAW264.7
  set1-2). Leave-one-line-out runs select whole lines by ``meta["group"]``.
* ``usiigaci`` (16 fields), ``coelho`` (24 fields): the seeded permutation
  above; 4 test / 2 val and 6 test / 3 val, the rest train.
* ``tcells`` (7 files of 5 tissue positions): by position, never by file
  (the three Position8 files show one field): Position10 and Position13
  test, Position9 val, Position7 and Position8 train.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .sources import (
    BBBC018_GROUPS,
    aitslab_names,
    bbbc018_group,
    bbbc018_names,
    coelho_names,
    deepcell_line,
    deepcell_names,
    dsb_names,
    tcells_names,
    tcells_position,
    usiigaci_names,
)

SPLIT_DIR = Path(__file__).parent / "splits"
SPLITS = ("train", "val", "test")

KOYUNCU_TRAIN = [1, 3, 7, 15, 23, 27, 28, 33, 35, 39]
KOYUNCU_TEST = [2, 4, 5, 6, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 24, 25, 26, 29, 30, 31, 32, 34, 36, 37, 38, 40, 41]
KOYUNCU_DENSE = [8, 9, 10, 22]
KOYUNCU_VAL = [23, 39]

__all__ = ["load_split", "make_splits", "split_names", "SPLITS"]


def load_split(dataset: str) -> dict[str, list[str]]:
    """The stored ``{"train": [...], "val": [...], "test": [...]}`` name lists of a data set.

    Parameters
    ----------
    dataset : str
        ``"bbbc018"``, ``"koyuncu"``, ``"dsb2018-test"``, ``"dsb2018-train"``,
        ``"aitslab"`` or ``"aitslab-nuclei"``.
    """
    path = SPLIT_DIR / f"{dataset}.json"
    if not path.is_file():
        known = sorted(p.stem for p in SPLIT_DIR.glob("*.json"))
        raise ConfigError(f"no stored split for data set {dataset!r}; splits exist for {known}")
    data = json.loads(path.read_text())
    return {k: list(data.get(k, [])) for k in SPLITS}


def split_names(dataset: str, split: str) -> list[str]:
    """Names in one split of a data set."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return load_split(dataset)[split]


def _bbbc018_split(root: Path) -> dict[str, list[str]]:
    names = bbbc018_names(root / "bbbc018", labelled_only=True)
    out: dict[str, list[str]] = {k: [] for k in SPLITS}
    for g, group in enumerate(BBBC018_GROUPS):
        fields = [n for n in names if bbbc018_group(n) == group]
        n = len(fields)
        for i, f in enumerate(fields):
            out["test" if i == g % n else "val" if i == (g + 1) % n else "train"].append(f)
    return {k: sorted(v) for k, v in out.items()}


def make_splits(root: Path) -> dict[str, dict[str, list[str]]]:
    """Compute every stored split from the data under ``root`` (rules in the module docstring)."""
    splits = {"bbbc018": _bbbc018_split(root)}
    train = sorted(set(KOYUNCU_TRAIN) - set(KOYUNCU_VAL)) + KOYUNCU_DENSE
    splits["koyuncu"] = {
        "train": [str(i) for i in sorted(train)],
        "val": [str(i) for i in KOYUNCU_VAL],
        "test": [str(i) for i in KOYUNCU_TEST],
    }
    test_ids = dsb_names(root / "dsb2018_stage1_test" / "stage1_test")
    splits["dsb2018-test"] = {"train": [], "val": [], "test": test_ids}
    ids = dsb_names(root / "dsb2018_stage1_train_subset" / "stage1_train")
    order = np.random.default_rng(2018).permutation(len(ids))
    val = sorted(ids[i] for i in order[:4])
    splits["dsb2018-train"] = {"train": sorted(set(ids) - set(val)), "val": val, "test": []}
    splits.update(_aitslab_splits(root / "aitslab_u2os"))
    splits["deepcell"] = _deepcell_split(root / "deepcell_covertlab")
    splits["usiigaci"] = _seeded_split(usiigaci_names(root / "usiigaci_phase"), 4, 2)
    splits["coelho"] = _seeded_split(coelho_names(root / "coelho2009_u2os"), 6, 3)
    splits["tcells"] = _tcells_split(root / "dense_tcells_tissue")
    return splits


DEEPCELL_VAL = ("HeLa-S3_set4",)
TCELLS_TEST = ("Position10", "Position13")
TCELLS_VAL = ("Position9",)


def _deepcell_split(folder: Path) -> dict[str, list[str]]:
    names = deepcell_names(folder)
    last = {deepcell_line(n): n for n in names}  # sorted names: the last field of each line
    test = sorted(last.values())
    val = [n for n in DEEPCELL_VAL if n in names]
    return {"train": sorted(set(names) - set(test) - set(val)), "val": val, "test": test}


def _tcells_split(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {k: [] for k in SPLITS}
    for n in tcells_names(folder):
        pos = tcells_position(n).rsplit("_", 1)[1]
        out["test" if pos in TCELLS_TEST else "val" if pos in TCELLS_VAL else "train"].append(n)
    return out


def _seeded_split(names: list[str], n_test: int, n_val: int) -> dict[str, list[str]]:
    order = np.random.default_rng(2023).permutation(len(names))
    picked = [names[i] for i in order]
    return {
        "test": sorted(picked[:n_test]),
        "val": sorted(picked[n_test : n_test + n_val]),
        "train": sorted(picked[n_test + n_val :]),
    }


def _aitslab_splits(folder: Path) -> dict[str, dict[str, list[str]]]:
    cells = aitslab_names(folder, "cells")
    only_nuclei = sorted(set(aitslab_names(folder, "nuclei")) - set(cells))
    shared = _seeded_split(cells, 8, 4)
    other = _seeded_split(only_nuclei, 7, 3)
    nuclei = {k: sorted(shared[k] + other[k]) for k in SPLITS}
    return {"aitslab": {k: shared[k] for k in SPLITS}, "aitslab-nuclei": nuclei}


def write_splits(root: Path, folder: Path = SPLIT_DIR) -> None:
    """Regenerate the JSON files (maintainers only; the files are committed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in make_splits(root).items():
        (folder / f"{name}.json").write_text(json.dumps(split, indent=1) + "\n")

"""BBBC018 outline filling: object counts against the data README and alignment with the DNA image."""

from __future__ import annotations

import numpy as np
import pytest

from lociseg.data import bbbc018_labels, load_dataset
from lociseg.data.sources import bbbc018_names

# a field from every other phenotype sample keeps this test fast
FIELDS = ["00733", "05621", "07314", "10777", "13569", "16817", "17675", "19466"]


@pytest.mark.parametrize("well", FIELDS)
def test_field_counts_plausible(data_root, well):
    root = data_root / "bbbc018"
    nuclei = bbbc018_labels(root, well, "nuclei")
    cells = bbbc018_labels(root, well, "cells")
    n, c = nuclei.max(), cells.max()
    # README: 21-364 nuclei and 22-370 enclosed cell regions per field
    assert 21 <= n <= 364 and 21 <= c <= 370
    assert 0.8 * n <= c <= 1.05 * n  # about one cell per outlined nucleus
    # every kept cell holds part of a nucleus, and most nuclei lie in a cell
    assert np.all(np.bincount(cells[nuclei > 0], minlength=c + 1)[1:] > 0)
    in_cell = np.bincount(nuclei[cells > 0], minlength=n + 1)[1:] > 0
    assert in_cell.mean() > 0.9
    sizes = np.bincount(cells.ravel())[1:]
    assert sizes.min() >= 15 and np.median(sizes) > np.median(np.bincount(nuclei.ravel())[1:])
    # outline pixels were given to the cells: touching cells share a boundary
    # (directly adjacent pixels with different labels) instead of a 1-pixel gap
    left, right = cells[:, :-1], cells[:, 1:]
    assert np.count_nonzero((left > 0) & (right > 0) & (left != right)) > 0


def test_dna_bright_inside_nuclei_and_actin_inside_cells(data_root):
    ds = load_dataset("bbbc018", root=data_root, channels=["DNA", "actin"])
    nds = load_dataset("bbbc018:nuclei", root=data_root)
    for well in FIELDS[:4]:
        s = ds[well]
        nuc = nds[well].labels > 0
        cell = s.labels > 0
        dna, actin = s.image.astype(float)
        assert dna[nuc].mean() > 2 * dna[~cell].mean()
        assert actin[cell & ~nuc].mean() > 1.5 * actin[~cell].mean()


def test_17675_burned_in_outlines(data_root):
    # the nuclei outline file of 17675 is the DNA image with outlines at 255
    n = bbbc018_labels(data_root / "bbbc018", "17675", "nuclei")
    assert 25 <= n.max() <= 60


def test_unlabelled_field_has_no_labels(data_root):
    ds = load_dataset("bbbc018", root=data_root)
    assert ds["10779"].labels is None and ds["10779"].image.shape == (2, 512, 512)


@pytest.mark.slow
def test_all_fields_totals_near_readme(data_root):
    root = data_root / "bbbc018"
    wells = bbbc018_names(root, labelled_only=True)
    assert len(wells) == 55
    n_total = sum(int(bbbc018_labels(root, w, "nuclei").max()) for w in wells)
    c_total = sum(int(bbbc018_labels(root, w, "cells").max()) for w in wells)
    assert n_total == pytest.approx(6815, rel=0.01)  # README: ~6,815 nuclei
    assert c_total == pytest.approx(6404, rel=0.03)  # README: ~6,404 cells with a nucleus

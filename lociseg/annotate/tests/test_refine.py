"""Self-training: merging two label images, and a shipped model re-drawing machine cells of real BBBC018."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from lociseg.annotate import annotate_image, estimate_cell_scale, merge_cells
from lociseg.predict.selftrain import cells_from_model


def test_merge_cells_by_hand():
    primary = np.zeros((10, 20), np.int32)
    primary[0:4, 0:4] = 1
    primary[0:4, 10:14] = 2
    secondary = np.zeros_like(primary)
    secondary[0:4, 0:5] = 7  # 16 of its 20 px in primary cell 1: already drawn, dropped
    secondary[6:9, 0:3] = 3  # untouched: added whole
    secondary[0:4, 12:17] = 5  # 8 of 20 px in primary cell 2: added on its 12 free px
    secondary[8:10, 10:12] = 9  # one cell in two pieces: only the larger kept
    secondary[8:10, 14:19] = 9
    out = merge_cells(primary, secondary, max_overlap=0.5)
    assert out.dtype == np.int32
    assert (out[primary > 0] == primary[primary > 0]).all()  # primary untouched
    assert set(np.unique(out)) == {0, 1, 2, 3, 4, 5}
    assert (out == 3).sum() == 9 and (out[6:9, 0:3] == 3).all()  # labels after primary's, in secondary order
    assert (out == 4).sum() == 12 and (out[0:4, 14:17] == 4).all()
    assert (out == 5).sum() == 10 and (out[8:10, 14:19] == 5).all()  # the 10-px piece, not the 4-px one
    assert (out[0:4, 4] == 0).all()  # the dropped cell's free pixels stay empty
    # max_overlap=0: only the cells primary does not touch (3 and 9)
    assert set(np.unique(merge_cells(primary, secondary, max_overlap=0.0))) == {0, 1, 2, 3, 4}
    assert (merge_cells(primary, np.zeros_like(primary)) == primary).all()
    with pytest.raises(ValueError, match="shape"):
        merge_cells(primary, secondary[:5])


@pytest.fixture(scope="module")
def field_crop(data_root):
    from lociseg.data import load_dataset

    # 05622 (train split): touching cells of varied shape; a crop keeps the test short
    cells = load_dataset("bbbc018", root=data_root, channels=["DNA", "actin"])["05622"]
    return cells.image[:, :256, :256], cells.labels[:256, :256]


def test_cells_from_model_on_real_bbbc018(field_crop):
    from lociseg.metrics import evaluate_image

    image, gt = field_crop
    machine = annotate_image(image[0], image[1]).cells
    # image channels (DNA, actin); the shipped model takes (actin, DNA)
    alone, d = cells_from_model(image, "cells", channels=[1, 0], augment=False)
    assert 10 < d < 60  # the model's own scale estimate, px
    merged, d2 = cells_from_model(image, "cells", channels=[1, 0], fill=machine, augment=False)
    assert d2 == pytest.approx(d)
    # the model's cells are kept as they are; machine cells it missed are added after them
    assert (merged[alone > 0] == alone[alone > 0]).all()
    assert merged.max() >= alone.max()
    # the cells' quality at their size (about 22 px); on a 256 px crop the automatic scale is the weak link
    # (12.6 px here with the generalist `cells`: BENCHMARKS.md, "Generalist cells model")
    sized, _ = cells_from_model(image, "cells", channels=[1, 0], diameter=22.0, augment=False)
    assert evaluate_image(gt, sized)["f1_50"] > 0.6


def test_cli_annotate_cells_from_a_model(data_root, field_crop, tmp_path, capsys):
    from lociseg.cli.main import run

    image, _ = field_crop
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "crop.tif", image)
    out = tmp_path / "out"
    # files' channels are indices: the model's names (actin, DNA) cannot be matched, so it gets cytoplasm first
    assert (
        run(
            [
                "annotate",
                str(src),
                "-n",
                "0",
                "--cytoplasm",
                "1",
                "-o",
                str(out),
                "--no-sheets",
                "--cells-from",
                "cells",
            ]
        )
        == 0
    )
    assert "cytoplasm then nucleus" in capsys.readouterr().err
    cells = tifffile.imread(out / "crop.cells.tif")
    meta = json.loads((out / "crop.meta.json").read_text())
    assert meta["cells_from"] == "cells" and meta["keep_missed"] is True and meta["cells_diameter"] > 0
    direct, _ = cells_from_model(
        image,
        "cells",
        channels=[1, 0],
        fill=annotate_image(image[0], image[1], diameter=estimate_cell_scale(image[0])[0]).cells,
    )
    assert (cells == direct).all()
    assert run(["annotate", str(src), "-o", str(out), "--cells-from", "no_such_model"]) == 2
    assert run(["annotate", str(src), "-o", str(out), "--cells-from", "nuclei"]) == 2  # a one-channel model

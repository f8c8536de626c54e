"""The files docs/export.md's "Using lociseg with QuPath / CellProfiler / Fiji" section names, checked as those tools' readers see them.

Fiji and CellProfiler are not installable here (Fiji is not on PyPI;
``pip install cellprofiler`` needs source builds of centrosome, mysqlclient,
wxPython and an old scikit-image that do not build on Python 3.11), so these
check the files against what ImageJ's TIFF decoder and ROI-set opener read:
the TIFF tags with tifffile, the ROI zip entry by entry with roifile.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile

from lociseg.export import formats as F
from lociseg.io.labels import write_labels


@pytest.mark.parametrize("n_max, bits", [(300, 16), (70_000, 32)])
def test_label_tiff_is_one_plain_strip_image_imagej_opens(tmp_path, n_max, bits):
    """ImageJ's TiffDecoder reads one uncompressed, LZW, PackBits or deflate (ZIP) plane in strips, not tiles;
    16-bit unsigned opens as a 16-bit image, 32-bit unsigned as 32-bit (float, exact below 2**24)."""
    labels = np.zeros((40, 50), np.int64)
    labels[2:10, 3:12], labels[20:30, 20:33] = 1, n_max
    path = write_labels(tmp_path / "img.tif", labels)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1 and len(tif.series) == 1
        page = tif.pages[0]
        assert not page.is_tiled and page.samplesperpixel == 1 and page.bitspersample == bits
        assert page.sampleformat == tifffile.SAMPLEFORMAT.UINT
        assert page.compression in (tifffile.COMPRESSION.NONE, tifffile.COMPRESSION.ADOBE_DEFLATE)
        assert page.predictor == tifffile.PREDICTOR.NONE
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        # a description that is not ImageJ's ("ImageJ=...") is ignored by ImageJ, so no hyperstack axes are implied
        assert not tif.is_imagej
        np.testing.assert_array_equal(page.asarray(), labels)


def test_roi_zip_is_a_roi_set_imagej_opens_in_the_roi_manager(tmp_path):
    """ImageJ opens a zip of ``*.roi`` entries into the ROI Manager; each entry is an ImageJ ROI ('Iout' header)
    whose stored name (``cell-<label>``) the manager lists."""
    roifile = pytest.importorskip("roifile", reason="roifile not installed (pip install 'lociseg[export]')")
    labels = np.zeros((40, 50), np.uint16)
    labels[2:10, 3:12], labels[15:25, 20:33], labels[30:38, 40:48] = 1, 2, 7
    path = F.export_labels(labels, tmp_path, "img", "imagej-roi")
    with zipfile.ZipFile(path) as zf:
        entries = zf.namelist()
        assert len(entries) == 3 and all(e.endswith(".roi") for e in entries)
        assert all(zf.read(e)[:4] == b"Iout" for e in entries)
    rois = roifile.roiread(path)
    assert [r.name for r in rois] == ["cell-1", "cell-2", "cell-7"]
    for roi, lab in zip(rois, (1, 2, 7)):
        ys, xs = np.nonzero(labels == lab)
        # ImageJ builds the polygon from the header's left/top plus the stored integer offsets; a traced
        # ROI's corners lie on pixel edges, so they span the cell's pixels exactly (right/bottom exclusive)
        xy = roi.integer_coordinates + [roi.left, roi.top]
        assert roi.roitype == roifile.ROI_TYPE.TRACED and roi.subpixelresolution is False
        assert (xy[:, 1].min(), xy[:, 0].min(), xy[:, 1].max(), xy[:, 0].max()) == (
            ys.min(),
            xs.min(),
            ys.max() + 1,
            xs.max() + 1,
        )

"""OME-Zarr (NGFF) images as input: read whole or window by window, like a TIFF."""

import numpy as np
import pytest

from lociseg.io import read_image, read_image_metadata
from lociseg.io.image import NgffImage, is_ngff

pytest.importorskip("zarr")


def test_ome_zarr_reads_like_the_array_it_stores(tmp_path, rng):
    from lociseg.export.formats import write_ome_zarr

    image = rng.integers(0, 4000, (2, 300, 520)).astype(np.uint16)
    path = write_ome_zarr(
        tmp_path / "img.ome.zarr",
        np.zeros((300, 520), np.int32),
        image=image,
        channel_names=["actin", "DNA"],
        chunks=128,
    )
    assert is_ngff(path) and not is_ngff(tmp_path)
    np.testing.assert_array_equal(read_image(path), image)
    lazy = read_image(path, lazy_above=0)
    assert isinstance(lazy, NgffImage) and lazy.shape == (2, 300, 520)
    np.testing.assert_array_equal(lazy[..., 100:230, 7:400], image[:, 100:230, 7:400])
    np.testing.assert_array_equal(read_image(path, channels=["DNA"]), image[1:])
    np.testing.assert_array_equal(read_image(path, channels=["DNA"], lazy_above=0)[..., :, :], image[1:])
    meta = read_image_metadata(path)
    assert meta["format"] == "ome-zarr" and meta["channel_names"] == ["actin", "DNA"] and meta["channels"] == 2

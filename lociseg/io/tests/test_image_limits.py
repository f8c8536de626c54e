"""Size limit checked before decoding, and lazily read TIFFs."""

import numpy as np
import pytest
import tifffile

from lociseg.errors import InputError
from lociseg.io import LazyImage, read_image


def test_huge_declared_tiff_is_refused_before_decoding(tmp_path):
    # the header declares a 65536 x 65536 uint16 plane (8 GiB decoded); the pixels are a hole in a sparse file
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, shape=(65536, 65536), dtype=np.uint16)
    with pytest.raises(InputError, match="65536x65536.*8.0 GiB.*--max-image-pixels"):
        read_image(path)
    # a raised limit lets it through: here lazily, so nothing is decoded until a window is asked for
    lazy = read_image(path, max_pixels=2**32, lazy_above=2**24)
    assert isinstance(lazy, LazyImage) and lazy.shape == (1, 65536, 65536)


def test_limit_applies_to_other_formats(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", np.zeros((3, 40, 50), np.uint16))
    for name in ("a.png", "a.npy"):
        with pytest.raises(InputError, match="40x50"):
            read_image(tmp_path / name, max_pixels=1999)
        assert read_image(tmp_path / name, max_pixels=2000).shape[-2:] == (40, 50)


@pytest.mark.parametrize("kind", ["channels-first", "grey", "rgb", "zstack"])
def test_lazy_tiff_windows_equal_the_eager_read(tmp_path, kind):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.tif"
    if kind == "channels-first":
        tifffile.imwrite(path, rng.integers(0, 4000, (3, 300, 260), np.uint16), tile=(128, 128))
    elif kind == "grey":
        tifffile.imwrite(path, rng.integers(0, 255, (300, 260), np.uint8))
    elif kind == "rgb":
        tifffile.imwrite(path, rng.integers(0, 255, (300, 260, 3), np.uint8), photometric="rgb")
    else:
        tifffile.imwrite(path, rng.random((4, 300, 260), np.float32), metadata={"axes": "ZYX"}, imagej=True)
    z = 2 if kind == "zstack" else None
    eager = read_image(path, z=z)
    lazy = read_image(path, z=z, lazy_above=0)
    assert isinstance(lazy, LazyImage) and lazy.shape == eager.shape and lazy.dtype == eager.dtype
    assert np.array_equal(np.asarray(lazy), eager)
    assert np.array_equal(lazy[..., 17:140, 100:259], eager[..., 17:140, 100:259])
    assert np.array_equal(lazy[0, 5:9], eager[0, 5:9])
    if eager.shape[0] > 1:
        assert np.array_equal(lazy.select([2, 0])[:, 3:8, 4:6], eager[[2, 0], 3:8, 4:6])
    if kind == "zstack":
        with pytest.raises(InputError, match="Z-stack"):
            read_image(path, lazy_above=0)

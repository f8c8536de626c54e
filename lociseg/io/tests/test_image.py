"""Image reading (TIFF/OME/PNG/JPEG/npy/DIB) and metadata."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from lociseg.errors import InputError
from lociseg.io import (
    read_image,
    read_image_metadata,
    validate_image,
)


def test_ome_tiff_channels_axes_pixel_size_round_trip(tmp_path, rng):
    data = rng.integers(0, 4000, (3, 20, 30), dtype=np.uint16)
    path = tmp_path / "img.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "CYX",
            "Channel": {"Name": ["DNA", "Actin", "pH3"]},
            "PhysicalSizeX": 0.65,
            "PhysicalSizeY": 0.5,
        },
    )
    img = read_image(path)
    assert img.shape == (3, 20, 30) and img.dtype == np.uint16
    np.testing.assert_array_equal(img, data)
    meta = read_image_metadata(path)
    assert meta["channel_names"] == ["DNA", "Actin", "pH3"]
    assert meta["pixel_size"] == pytest.approx((0.5, 0.65))
    assert meta["format"] == "ome-tiff"
    # names are matched case-insensitively, in the requested order
    np.testing.assert_array_equal(read_image(path, channels=["actin", "dna"]), data[[1, 0]])
    np.testing.assert_array_equal(read_image(path, channels=[2]), data[[2]])
    with pytest.raises(InputError, match="no channel named 'tubulin'"):
        read_image(path, channels=["tubulin"])


def test_tiff_channel_last_and_singleton_axes(tmp_path, rng):
    yxc = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, yxc, photometric="rgb")
    np.testing.assert_array_equal(read_image(p), np.moveaxis(yxc, -1, 0))
    # singleton T and Z are squeezed; channel axis found wherever it is
    tzcyx = rng.random((1, 1, 2, 8, 9)).astype(np.float32)
    p2 = tmp_path / "hyper.ome.tif"
    tifffile.imwrite(p2, tzcyx, ome=True, metadata={"axes": "TZCYX"})
    out = read_image(p2)
    assert out.shape == (2, 8, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out, tzcyx[0, 0])


def test_z_stack_needs_a_plane(tmp_path, rng):
    zyx = rng.integers(0, 100, (5, 8, 8), dtype=np.uint16)
    p = tmp_path / "stack.ome.tif"
    tifffile.imwrite(p, zyx, ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(InputError, match="Z-stack with 5 planes"):
        read_image(p)
    np.testing.assert_array_equal(read_image(p, z=3)[0], zyx[3])
    with pytest.raises(InputError, match="out of range"):
        read_image(p, z=7)


def test_imagej_labels_and_resolution(tmp_path, rng):
    data = rng.integers(0, 255, (2, 10, 12), dtype=np.uint8)
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "CYX", "unit": "um", "Labels": ["nuc", "cyto"]},
    )
    meta = read_image_metadata(p)
    assert meta["pixel_size"] == pytest.approx((0.25, 0.25))
    assert meta["channel_names"] == ["nuc", "cyto"]
    np.testing.assert_array_equal(read_image(p, channels="cyto")[0], data[1])


@pytest.mark.parametrize("mode,shape,channels", [("L", (12, 14), 1), ("RGB", (12, 14, 3), 3), ("RGBA", (12, 14, 4), 3)])
def test_png_modes(tmp_path, rng, mode, shape, channels):
    arr = rng.integers(0, 255, shape, dtype=np.uint8)
    p = tmp_path / "x.png"
    Image.fromarray(arr, mode=mode).save(p)
    img = read_image(p)
    assert img.shape == (channels, 12, 14) and img.dtype == np.uint8
    expected = arr[None] if arr.ndim == 2 else np.moveaxis(arr[..., :3], -1, 0)
    np.testing.assert_array_equal(img, expected)


def test_png_16bit(tmp_path, rng):
    arr = rng.integers(0, 60000, (9, 7), dtype=np.uint16)
    p = tmp_path / "x16.png"
    Image.fromarray(arr).save(p)
    img = read_image(p)
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img[0], arr)


def test_npy_layouts(tmp_path, rng):
    hwc = rng.random((20, 30, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", hwc)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), np.moveaxis(hwc, -1, 0))  # HWC -> CHW
    np.save(tmp_path / "b.npy", hwc[..., 0])
    np.testing.assert_array_equal(read_image(tmp_path / "b.npy"), hwc[None, ..., 0])
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match="expected"):
        read_image(tmp_path / "c.npy")


def test_dib_real_file_aligns_with_nucleus_outlines(data_root):
    from lociseg.io import outlines_to_labels

    img = read_image(data_root / "bbbc018/BBBC018_v1_images/00733-DNA.DIB")
    assert img.shape == (1, 512, 512) and img.dtype == np.uint16
    assert img.max() <= 4095 and img.min() > 0  # 12-bit camera values
    outline = read_image(data_root / "bbbc018/BBBC018_v1_outlines/00733-nuclei.png")[0] > 0
    nuclei = outlines_to_labels(outline) > 0
    # Hoechst is bright inside the outlined nuclei; a flipped image would fail this
    assert img[0][nuclei].mean() > 2 * img[0][~nuclei].mean()
    flipped = img[0, ::-1]
    assert img[0][nuclei].mean() > 1.5 * flipped[nuclei].mean()


def test_dib_wrong_size_and_truncated(tmp_path, data_root):
    raw = (data_root / "bbbc018/BBBC018_v1_images/00733-DNA.DIB").read_bytes()
    p = tmp_path / "cut.DIB"
    p.write_bytes(raw[:100000])
    with pytest.raises(InputError, match="expected 524340") as exc:
        read_image(p)
    assert str(p) in str(exc.value)
    p.write_bytes(raw[:20])
    with pytest.raises(InputError, match="truncated"):
        read_image(p)


def test_unreadable_and_truncated_files(tmp_path, rng):
    missing = tmp_path / "nope.tif"
    with pytest.raises(InputError, match="no such file"):
        read_image(missing)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff at all")
    with pytest.raises(InputError, match="unreadable TIFF") as exc:
        read_image(garbage)
    assert "garbage.tif" in str(exc.value)
    png = tmp_path / "t.png"
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(png)
    (tmp_path / "trunc.png").write_bytes(png.read_bytes()[:200])
    with pytest.raises(InputError, match="unreadable image"):
        read_image(tmp_path / "trunc.png")
    tif = tmp_path / "full.tif"
    tifffile.imwrite(tif, rng.integers(0, 255, (256, 256), dtype=np.uint8))
    (tmp_path / "trunc.tif").write_bytes(tif.read_bytes()[:1000])
    with pytest.raises(InputError):
        read_image(tmp_path / "trunc.tif")


def test_nonfinite_empty_and_constant_files(tmp_path):
    img = np.ones((2, 6, 6), np.float32)
    img[1, 2, 3] = np.nan
    img[0, 0, 0] = np.inf
    p = tmp_path / "nan.tif"
    tifffile.imwrite(p, img, photometric="minisblack", metadata={"axes": "CYX"})
    with pytest.raises(InputError, match="2 NaN or infinite") as exc:
        read_image(p)
    assert "nan.tif" in str(exc.value)
    assert np.isnan(read_image(p, allow_nonfinite=True)).sum() == 1
    np.save(tmp_path / "empty.npy", np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.npy")
    const = tmp_path / "const.png"
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(const)
    assert read_image(const).max() == 9  # a blank image reads fine ...
    with pytest.raises(InputError, match="constant"):  # ... but can be refused
        validate_image(read_image(const), path=const, allow_constant=False)
    with pytest.raises(InputError, match=r"must be \(C, H, W\)"):
        validate_image(np.zeros((4, 4)))

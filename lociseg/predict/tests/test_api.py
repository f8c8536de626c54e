import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from lociseg.errors import ConfigError, InputError
from lociseg.models.base import InputSpec, SegmentationModel
from lociseg.models.semantic import labels_to_instances
from lociseg.predict.api import (
    Segmenter,
    load_model,
    segment,
)
from lociseg.predict.outputs import write_outputs
from lociseg.predict.paste import paste_instances
from lociseg.predict.table import CellTable
from lociseg.structures import Instances
from lociseg.transforms import diameter_from_labels, point_spacing, rescale_instances


class _Cfg:
    def __init__(self, **kw):
        self.input = InputSpec(**kw)


class ThresholdModel(SegmentationModel):
    """Test double: the cells are the connected bright regions of channel 0 (at any scale)."""

    def __init__(self, **kw):
        super().__init__()
        self.config = _Cfg(**kw)
        self.calls = []

    def predict_instances(self, image: torch.Tensor) -> Instances:
        assert image.ndim == 4 and image.shape[1] == self.config.input.in_channels
        self.calls.append(tuple(image.shape))
        labels, _ = ndi.label(image[0, 0].numpy() > 0.5)
        return labels_to_instances(labels)


def _discs(shape, d, n, rng):
    """Label image of n non-touching discs of diameter d."""
    labels = np.zeros(shape, np.int32)
    yy, xx = np.indices(shape)
    k = 0
    for _ in range(50 * n):
        cy, cx = rng.uniform(d, shape[0] - d), rng.uniform(d, shape[1] - d)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (d / 2) ** 2
        if (ndi.binary_dilation(disc, iterations=2) & (labels > 0)).any():
            continue
        k += 1
        labels[disc] = k
        if k == n:
            break
    return labels


def _match_iou(a, b):
    """IoU of each object of a with its best match in b."""
    out = []
    for lab in range(1, a.max() + 1):
        m = a == lab
        ids, cnt = np.unique(b[m], return_counts=True)
        cnt, ids = cnt[ids > 0], ids[ids > 0]
        if not len(ids):
            out.append(0.0)
            continue
        j = ids[cnt.argmax()]
        inter = cnt.max()
        out.append(inter / (m.sum() + (b == j).sum() - inter))
    return np.array(out)


@pytest.fixture
def disc_image(rng):
    gt = _discs((300, 260), 20, 40, rng)
    image = np.where(gt > 0, 200, 10).astype(np.uint8)
    return image, gt


def test_segment_shapes_dtypes_and_scale_round_trip(disc_image):
    image, gt = disc_image
    model = ThresholdModel(in_channels=1, target_diameter=32)
    seg = Segmenter(model, device="cpu")
    labels, table = seg.segment(image, diameter=20)
    assert labels.shape == image.shape and labels.dtype == np.uint16
    assert model.calls[-1][2:] == (480, 416)  # 300*1.6 = 480, padded to multiples of 32
    assert labels.max() == gt.max() == len(table)
    # cells mapped back to the original grid: each GT disc recovered with a high IoU
    assert _match_iou(gt, labels).min() > 0.9
    assert isinstance(table, CellTable) and table.meta["diameter_used"] == 20
    assert table.meta["scale_factor"] == pytest.approx(1.6)
    assert np.array_equal(table.label, np.arange(1, labels.max() + 1))
    assert np.array_equal(table.area, np.bincount(labels.ravel())[1:])
    cy = ndi.center_of_mass(labels > 0, labels, 1)[0]
    assert table.centroid_y[0] == pytest.approx(cy)


def test_diameter_estimated_and_recorded(disc_image):
    image, gt = disc_image
    seg = Segmenter(ThresholdModel(in_channels=1, target_diameter=32), device="cpu")
    with pytest.warns(UserWarning, match="diameter estimated"):
        labels, table = seg.segment(image)
    assert table.meta["diameter_estimated"] is True
    assert table.meta["diameter_used"] == pytest.approx(diameter_from_labels(gt), rel=0.1)


def test_scale_of_a_large_image_searched_on_its_central_window(rng, monkeypatch):
    """The search reads one central SEARCH_SIDE window, normalised with the whole image's percentiles."""
    from lociseg.predict.scale_search import SEARCH_SIDE, ScaleEstimate, search_window

    gt = _discs((300, SEARCH_SIDE + 52), 20, 60, rng)
    image = np.where(gt > 0, 200, 10).astype(np.uint8)
    image[:, :26] = 255  # outside the window: would change a search that saw it
    seg = Segmenter(ThresholdModel(in_channels=1, target_diameter=32), device="cpu")
    seen = []

    def search(img, **kw):
        seen.append(img)
        return ScaleEstimate(20.0, 1.6, 1.0, np.ones(1), np.ones(1), np.ones(1, int))

    monkeypatch.setattr(seg, "search_scale", search)
    with pytest.warns(UserWarning, match="diameter estimated at 20.0"):
        labels, table = seg.segment(image)
    assert search_window(image.shape) == (slice(0, 300), slice(26, 26 + SEARCH_SIDE))
    [window] = seen
    whole = seg.normalize(image[None], seg.percentiles(image[None]))
    np.testing.assert_array_equal(window, whole[:, :, 26 : 26 + SEARCH_SIDE])
    assert table.meta["diameter_used"] == 20.0 and labels.max() > 0


def test_tiled_matches_untiled(disc_image):
    image, gt = disc_image
    seg = Segmenter(ThresholdModel(in_channels=1, target_diameter=20), device="cpu")
    whole, _ = seg.segment(image, diameter=20)
    tiled, _ = seg.segment(image, diameter=20, tile_size=128, overlap=64)
    assert len(seg.model.calls) > 2
    assert whole.max() == tiled.max() == gt.max()
    assert _match_iou(whole, tiled).min() == 1.0


def test_channel_selection_and_errors(disc_image):
    image, gt = disc_image
    seg = Segmenter(ThresholdModel(in_channels=1, channels=["DNA"], target_diameter=20), device="cpu")
    noise = np.full_like(image, 5)
    two = np.stack([noise, image])
    with pytest.raises(InputError, match="2 channel.*takes 1"):
        seg.segment(two, diameter=20)
    a, _ = seg.segment(two, diameter=20, channels=[1])
    b, _ = seg.segment(two, diameter=20, channels=["dna"], channel_names=["actin", "DNA"])
    c, _ = seg.segment(two, diameter=20, channel_names=["actin", "DNA"])  # by the model's own names
    d, _ = seg.segment(np.moveaxis(two, 0, -1), diameter=20, channels=[1], channel_axis=-1)
    assert a.max() == gt.max() and np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(a, d)
    # grey stored as RGB is accepted by a 1-channel model
    rgb, _ = seg.segment(np.stack([image] * 3), diameter=20)
    assert np.array_equal(rgb, a)
    with pytest.raises(InputError, match="no channel named"):
        seg.segment(two, diameter=20, channels=["pH3"], channel_names=["actin", "DNA"])
    with pytest.raises(InputError, match="out of range"):
        seg.segment(two, diameter=20, channels=[2])
    with pytest.raises(InputError, match="names are unknown"):
        seg.segment(two, diameter=20, channels=["DNA"])
    with pytest.raises(InputError, match="shape"):
        seg.segment(np.zeros((2, 2, 8, 8)), diameter=20)
    with pytest.raises(ConfigError, match="diameter"):
        seg.segment(image, diameter=-3)
    with pytest.raises(ConfigError, match="overlaps"):
        seg.segment(image, diameter=20, overlaps="area")
    # separated discs: who owns contested pixels does not matter, and the rule is recorded
    p, table = seg.segment(image, diameter=20, channels=[0], overlaps="probability")
    assert table.meta["overlaps"] == "probability" and p.max() == gt.max()


def test_absent_optional_channel_becomes_a_zero_plane(disc_image):
    image, gt = disc_image
    spec = {"in_channels": 2, "channels": ["cell", "nucleus"], "target_diameter": 20}
    seg = Segmenter(ThresholdModel(**spec, optional=["nucleus"]), device="cpu")
    one, _ = seg.segment(image, diameter=20)  # a phase-contrast field: no nuclear stain
    assert one.max() == gt.max()
    picked = seg.select_channels(image[None], None)
    assert picked.shape == (2, *image.shape) and not picked[1].any() and np.array_equal(picked[0], image)
    assert InputSpec(**spec, optional=["nucleus"]).missing_ok(1) and not InputSpec(**spec).missing_ok(1)
    # only trailing optional channels may be missing, and not all of them
    assert not InputSpec(**spec, optional=["cell"]).missing_ok(1) and not InputSpec(
        **spec, optional=["nucleus"]
    ).missing_ok(0)
    with pytest.raises(InputError, match="1 channel.*takes 2"):
        Segmenter(ThresholdModel(**spec), device="cpu").segment(image, diameter=20)


def test_load_model_errors(tmp_path):
    with pytest.raises(ConfigError):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="device"):
        load_model(ThresholdModel(), device="tpu")


def test_segment_function_and_empty_image():
    model = ThresholdModel(in_channels=1, target_diameter=32)
    labels, table = segment(np.zeros((64, 64), np.uint8), model=model, diameter=32, device="cpu")
    assert labels.max() == 0 and len(table) == 0
    with pytest.warns(UserWarning, match="no cells"):
        _, table = segment(np.zeros((64, 64), np.uint8), model=Segmenter(model, device="cpu"))
    assert table.meta["diameter_used"] == 32


def test_write_outputs(tmp_path, disc_image):
    from lociseg.io import read_labels

    image, _ = disc_image
    labels, table = Segmenter(ThresholdModel(in_channels=1, target_diameter=20), device="cpu").segment(
        image, diameter=20
    )
    paths = write_outputs(tmp_path / "out", "img", labels, table, {"input": "x.png"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img.csv", "img.lociseg.json", "img.tif"]
    assert np.array_equal(read_labels(paths["labels"]), labels)
    rows = paths["table"].read_text().splitlines()
    assert rows[0] == "label,centroid_y,centroid_x,area,score" and len(rows) == len(table) + 1
    meta = json.loads(paths["meta"].read_text())
    assert meta["diameter_used"] == 20 and meta["input"] == "x.png" and meta["cells"] == len(table)


def test_rescale_instances_round_trip(rng):
    gt = _discs((90, 120), 14, 10, rng)
    inst = labels_to_instances(gt)
    # to a grid 1.5x larger and back
    up = rescale_instances(inst, (90, 120), (135, 180))
    back = rescale_instances(up, (135, 180), (90, 120))
    lab, _ = paste_instances(back, (90, 120), min_area=1)
    assert lab.max() == gt.max() and _match_iou(gt, lab).min() > 0.85
    np.testing.assert_allclose(back.locations, inst.locations, atol=1e-3)
    labup, _ = paste_instances(up, (135, 180), min_area=1)
    assert diameter_from_labels(labup) == pytest.approx(1.5 * diameter_from_labels(gt), rel=0.05)


@pytest.mark.parametrize("spec", ["koyuncu@train", "bbbc018@val"])
def test_diameter_estimators_on_real_images(data_root, spec):
    """Mask-based estimate (what segment() uses) and nearest-neighbour spacing vs the GT median diameter."""
    from lociseg.data import load_dataset

    ds = load_dataset(spec, root=data_root)
    mask_ok, spacing_ok = [], []
    for sample in [ds[i] for i in range(min(len(ds), 6))]:
        true = diameter_from_labels(sample.labels)
        inst = labels_to_instances(sample.labels)  # oracle predictions
        pasted, _ = paste_instances(inst, sample.shape, min_area=1, min_fragment_fraction=0)
        mask_ok.append(abs(diameter_from_labels(pasted) / true - 1) < 0.25)
        spacing_ok.append(abs(point_spacing(inst.locations) / true - 1) < 0.25)
    assert all(mask_ok)
    # spacing only holds where cells touch: all Koyuncu fields, most BBBC018 ones
    assert np.mean(spacing_ok) >= (1.0 if spec.startswith("koyuncu") else 0.6)


def test_segment_augment_reaches_the_model_and_is_recorded(disc_image):
    image, _ = disc_image

    class Recording(ThresholdModel):
        def predict_instances(self, image: torch.Tensor, *, augment: bool = False) -> Instances:
            self.augmented = augment
            return super().predict_instances(image)

    model = Recording(in_channels=1, target_diameter=20)
    seg = Segmenter(model, device="cpu")
    _, table = seg.segment(image, diameter=20, augment=True)
    assert model.augmented is True and table.meta["augment"] is True
    _, table = seg.segment(image, diameter=20)
    assert model.augmented is False and table.meta["augment"] is False
    # a model without the keyword still segments when augment is off (ThresholdModel above)


class UnsureModel(ThresholdModel):
    """ThresholdModel whose detections all score below the high-score mark."""

    def predict_instances(self, image: torch.Tensor) -> Instances:
        inst = super().predict_instances(image)
        inst.scores[:] = 0.45
        return inst


def test_scale_confidence_recorded_and_unsure_warned(disc_image, tmp_path):
    image, gt = disc_image
    sure = Segmenter(ThresholdModel(in_channels=1, target_diameter=32), device="cpu")
    with pytest.warns(UserWarning, match=r"estimated at .* \(confidence 1.00"):
        _, table = sure.segment(image)
    m = table.meta
    assert m["scale_confidence"] == 1.0 and m["scale_unsure"] is False and m["high_score_fraction"] == 1.0
    assert m["diameter_used"] == pytest.approx(m["scale_search"]["diameter"], abs=0.01)
    assert len(m["scale_search"]["zooms"]) == len(m["scale_search"]["quality"]) > 3
    unsure = Segmenter(UnsureModel(in_channels=1, target_diameter=32), device="cpu")
    with pytest.warns(UserWarning, match="unsure"):
        _, table = unsure.segment(image)
    assert table.meta["scale_unsure"] is True and table.meta["high_score_fraction"] == 0.0
    # the sidecar carries them
    meta = json.loads(write_outputs(tmp_path, "x", *unsure.segment(image, diameter=20))["meta"].read_text())
    assert meta["high_score_fraction"] == 0.0 and "scale_confidence" not in meta  # diameter given: no search

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lociseg.errors import InputError
from lociseg.models.checkpoint import half_checkpoint, load_checkpoint, save_checkpoint
from lociseg.train.checkpoint import load_experiment_config
from lociseg.train.config import ExperimentConfig
from lociseg.train.data import Prepared, make_batch, sample_crop
from lociseg.train.loop import lr_factor, train


def _small(steps=6, **data):
    cfg = ExperimentConfig()
    cfg.data.train = ["bbbc018@train"]
    cfg.data.val = []
    cfg.data.crop_size = 64
    cfg.optim.steps = steps
    cfg.optim.batch_size = 1
    cfg.optim.warmup_steps = 2
    cfg.optim.log_every = 1
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


def test_config_yaml_round_trip(tmp_path):
    cfg = _small().override({"lacss.backbone.preset": "base", "optim.lr": 0.01})
    cfg.to_yaml(tmp_path / "c.yaml")
    assert ExperimentConfig.from_yaml(tmp_path / "c.yaml") == cfg


def test_shipped_configs_load_and_weak_ones_use_territory():
    """Every configs/*.yaml loads (they are sparse: test_config_layout.py) and the weak ones turn the
    territory safeguard on."""
    from pathlib import Path

    files = sorted((Path(__file__).parents[3] / "configs").glob("*.yaml"))
    assert files
    for f in files:
        cfg = ExperimentConfig.from_yaml(f)
        if cfg.lacss.mode.startswith("weak"):
            assert cfg.lacss.weak.territory_weight > 0, f.name


def test_lr_schedule():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


def test_crops_are_deterministic_and_consistent(rng):
    img = rng.random((2, 100, 90)).astype(np.float32)
    lab = np.zeros((100, 90), np.int32)
    lab[10:30, 20:50] = 4
    item = Prepared("x", img, lab, None, None, 1.0)
    cfg = _small()
    a = sample_crop(item, 64, cfg.data.augment, np.random.default_rng([0, 5, 0]), weak=False)
    b = sample_crop(item, 64, cfg.data.augment, np.random.default_rng([0, 5, 0]), weak=False)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["labels"], b["labels"])
    # weak crops move points with the pixels: each point stays on its (foreground) cell
    fg = (lab > 0).astype(np.float32)
    pts = np.array([[20.0, 35.0]], np.float32)
    witem = Prepared("x", img, None, pts, fg, 1.0)
    for s in range(20):
        c = sample_crop(witem, 64, cfg.data.augment, np.random.default_rng([1, s, 0]), weak=True)
        for y, x in c["points"]:
            assert c["foreground"][int(round(y)), int(round(x))] == 1


def test_save_load_identical_output(tmp_path, rng):
    from lociseg.models import LacssModel

    cfg = _small()
    model = LacssModel(cfg.lacss).eval()
    save_checkpoint(tmp_path / "ck", model, cfg, {"f1_50": 0.5})
    loaded = load_checkpoint(tmp_path / "ck")
    x = torch.from_numpy(rng.random((1, 2, 64, 64)).astype(np.float32))
    for a, b in zip(model(x), loaded(x)):
        assert torch.equal(a, b)
    assert load_experiment_config(tmp_path / "ck") == cfg and loaded.config == cfg.lacss
    assert set(load_file(str(tmp_path / "ck" / "model.safetensors"))) == set(model.state_dict())


def test_half_checkpoint_segments_a_real_field_as_the_float32_one(tmp_path, data_root):
    """The float16 copy of the shipped cells model is half the bytes, loads as float32 and draws the
    same cells on a real BBBC018 crop (float16 rounding moves a few border pixels at most)."""
    import lociseg
    from lociseg.data import load_dataset
    from lociseg.metrics import match_instances
    from lociseg.models.pretrained import resolve_model

    src = resolve_model("cells")
    dst = half_checkpoint(src, tmp_path / "half")
    assert {p.name for p in dst.iterdir()} == {"model.safetensors", "config.yaml", "metrics.json"}
    assert (dst / "model.safetensors").stat().st_size < 0.55 * (src / "model.safetensors").stat().st_size
    assert all(
        v.dtype == torch.float16 for v in load_file(str(dst / "model.safetensors")).values() if v.is_floating_point()
    )
    assert next(load_checkpoint(dst).parameters()).dtype == torch.float32
    image = load_dataset("bbbc018@test#00733", channels=["actin", "DNA"])[0].image[:, :192, :192]
    full, _ = lociseg.load_model(src, device="cpu").segment(image, diameter=23.0)
    half, _ = lociseg.load_model(dst, device="cpu").segment(image, diameter=23.0)
    assert full.max() >= 10
    m = match_instances(full, half, thresholds=[0.9])
    assert m.at(0.9)["f1"] >= 0.95


def test_load_refuses_damaged_checkpoint(tmp_path):
    from lociseg.models import LacssModel

    cfg = _small()
    save_checkpoint(tmp_path / "ck", LacssModel(cfg.lacss), cfg)
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read weights"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_resume_equals_uninterrupted(tmp_path, data_root):
    cfg = _small(steps=6)
    # One thread: multi-threaded CPU kernels may sum in a different order from run to run,
    # which is not what this test is about (saved and restored state).
    cfg.optim.threads = 1
    threads = torch.get_num_threads()
    train(cfg, tmp_path / "full", device="cpu", progress=False)
    train(cfg, tmp_path / "split", device="cpu", progress=False, stop_at=3)
    train(cfg, tmp_path / "split", device="cpu", progress=False, resume=True)
    a = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.get_num_threads() == threads  # train() leaves the process as it found it
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 6  # header + one row per step across both parts
    # CPU seconds carry over a resume (a campaign's CPU-hours come from the last row)
    rows = list(csv.DictReader(log))
    cpu = [float(r["cpu_seconds"]) for r in rows]
    assert all(b > a for a, b in zip(cpu, cpu[1:]))
    # a finished run is never mixed with a new one by accident
    with pytest.raises(InputError, match="--overwrite"):
        train(cfg, tmp_path / "split", device="cpu", progress=False)


def test_weak_from_labels_training_runs(tmp_path, data_root):
    cfg = _small(steps=3, annotations=["from-labels"])
    cfg.lacss.mode = "weak+aux"
    cfg.lacss.weak.territory_weight = 1.0
    out = train(cfg, tmp_path / "weak", device="cpu", progress=False)
    assert out["step"] == 3
    header = (tmp_path / "weak" / "log.csv").read_text().splitlines()[0]
    assert "coverage" in header and "aux" in header and "diag_area_ratio" in header and "territory" in header


def _heldout_loss(model, items, cfg, weak: bool) -> tuple[float, dict[str, float]]:
    """Mean training loss (and its parts) on four fixed crops of held-out images, no gradient."""
    model.eval()
    total, parts = 0.0, {}
    with torch.no_grad():
        for k in range(4):
            batch = make_batch(items, cfg, 10**6 + k, torch.device("cpu"), weak=weak)
            loss, p = model.training_loss(batch, step=10**6)
            total += float(loss) / 4
            for name, v in p.items():
                parts[name] = parts.get(name, 0.0) + v / 4
    return total, parts


def _short_training(tmp_path, mode: str, steps: int):
    """Train on BBBC018 crops for ``steps`` steps; held-out loss (and parts) of the untrained and trained model."""
    from lociseg.models import LacssModel
    from lociseg.train.data import load_samples_for, prepare

    weak = mode != "supervised"
    cfg = _small(steps=steps, annotations=["from-labels"] if weak else [])
    cfg.data.crop_size = 96
    cfg.optim.batch_size = 2
    cfg.optim.lr = 2e-3 if weak else 3e-3
    cfg.optim.warmup_steps = min(10, steps)
    cfg.lacss.mode = mode
    cfg.lacss.match_start = 10**9  # keep annotated locations: the comparison is about learning, not matching
    cfg.lacss.weak.warmup_steps = 0
    out = train(cfg, tmp_path / "run", device="cpu", progress=False)
    samples = load_samples_for(cfg, ["bbbc018@val"], ["from-labels"] if weak else None)[:3]
    items, _ = prepare(samples, cfg, weak=weak)
    torch.manual_seed(cfg.optim.seed)
    untrained = _heldout_loss(LacssModel(cfg.lacss), items, cfg, weak)
    trained = _heldout_loss(load_checkpoint(tmp_path / "run", "cpu"), items, cfg, weak)
    return out, untrained, trained


@pytest.mark.parametrize("mode", ["supervised", "weak"])
def test_short_training_smoke(tmp_path, data_root, mode):
    """Two steps of the slow test below: a checkpoint and a log row per step, finite held-out losses."""
    out, (untrained, u_parts), (trained, t_parts) = _short_training(tmp_path, mode, steps=2)
    assert out["step"] == 2
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 1 + 2
    assert np.isfinite([untrained, trained, *u_parts.values(), *t_parts.values()]).all()
    assert trained != untrained  # the checkpoint holds trained weights, not a fresh model's
    if mode == "weak":
        assert "lpn_score" in t_parts


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["supervised", "weak"])
def test_short_training_beats_untrained(tmp_path, data_root, mode):
    """A short CPU run on BBBC018 crops lowers the loss on held-out (validation) images.

    Supervised: the whole loss. Weak (labels from the GT, 200 steps): the masks
    need longer than CI can give, so the check is that the location proposals
    (the LPN score loss) improve clearly and the total does not get worse.
    """
    _, (untrained, u_parts), (trained, t_parts) = _short_training(
        tmp_path, mode, steps=80 if mode == "supervised" else 200
    )
    if mode == "weak":
        assert t_parts["lpn_score"] < 0.8 * u_parts["lpn_score"], (t_parts, u_parts)
        assert trained < untrained, (t_parts, u_parts)
    else:
        assert trained < 0.8 * untrained, (trained, untrained)


@pytest.fixture(scope="module")
def val_annotations(tmp_path_factory, data_root):
    """An annotation folder for bbbc018@val: weak labels from the GT, and as 'machine-made'
    cells the GT cells with every odd label dropped (so they differ from the labels)."""
    from lociseg.annotate import weak_from_labels, write_annotation
    from lociseg.data import load_dataset

    folder = tmp_path_factory.mktemp("ann_val")
    for s in load_dataset("bbbc018@val", root=data_root, channels=["actin", "DNA"]):
        pts, fg = weak_from_labels(s.labels)
        write_annotation(folder, s.name, pts, fg, cells=np.where(s.labels % 2 == 0, s.labels, 0))
    return folder


def test_machine_labels_replace_the_gt(val_annotations, tmp_path):
    from lociseg.errors import ConfigError
    from lociseg.train.data import load_samples_for

    cfg = _small(steps=3, train=["bbbc018@val"], annotations=[str(val_annotations)], label_source="machine")
    samples = load_samples_for(cfg, cfg.data.train, cfg.data.annotations, machine=True)
    assert all((s.labels % 2 == 0).all() and (s.labels == s.cells).all() for s in samples)
    out = train(cfg, tmp_path / "machine", device="cpu", progress=False)
    assert out["step"] == 3
    with pytest.raises(ConfigError, match="annotations"):
        load_samples_for(cfg, cfg.data.train, None, machine=True)
    with pytest.raises(ConfigError, match="from-labels"):
        load_samples_for(cfg, cfg.data.train, ["from-labels"], machine=True)


def test_weak_territory_from_machine_cells_runs(val_annotations, tmp_path):
    cfg = _small(steps=3, train=["bbbc018@val"], annotations=[str(val_annotations)])
    cfg.lacss.mode = "weak"
    cfg.lacss.weak.territory_weight = 1.0
    cfg.lacss.weak.territory_source = "cells"
    cfg.lacss.weak.warmup_steps = 1
    cfg.data.crop_size, cfg.optim.batch_size = 128, 2  # cells in the first crops (the log's header)
    train(cfg, tmp_path / "weak", device="cpu", progress=False)
    rows = (tmp_path / "weak" / "log.csv").read_text().splitlines()
    col = rows[0].split(",").index("territory")
    assert max(float(r.split(",")[col] or 0) for r in rows[1:]) > 0  # masks reached into other cells and paid


def test_crops_carry_cells_and_their_border_depth(rng):
    from lociseg.train.data import border_depth

    img = rng.random((2, 100, 90)).astype(np.float32)
    cells = np.zeros((100, 90), np.int32)
    cells[10:40, 10:40], cells[10:40, 40:70] = 1, 2
    pts = np.array([[25.0, 25.0], [25.0, 55.0]], np.float32)
    item = Prepared("x", img, None, pts, (cells > 0).astype(np.float32), 1.0, cells)
    cfg = _small()
    for s in range(10):
        c = sample_crop(item, 64, cfg.data.augment, np.random.default_rng([2, s, 0]), weak=True)
        assert np.array_equal(c["cells_depth"], border_depth(c["cells"]))
        for _k, (y, x) in enumerate(c["points"]):  # points move with their cells
            assert c["cells"][int(round(y)), int(round(x))] > 0
    assert border_depth(np.ones((3, 4), np.int64)).min() == 4  # no border: the image size


@pytest.mark.parametrize("weak", [False, True])
def test_worker_batches_equal_the_loop_batches(rng, weak):
    """Batches built ahead in worker processes are the loop's own, step for step and in order."""
    from lociseg.train.data import iterate_batches

    items = []
    for k in range(3):
        labels = np.zeros((90, 100), np.int32)
        labels[10 + k : 40, 10:45], labels[50:80, 30 + k : 70] = 1, 2
        pts = np.array([[25.0, 27.0], [65.0, 50.0]], np.float32)
        items.append(
            Prepared(
                f"i{k}", rng.random((2, 90, 100)).astype(np.float32), labels, pts, (labels > 0).astype(np.float32), 1.0
            )
        )
    cfg = _small()
    cfg.optim.batch_size = 2
    cpu = torch.device("cpu")
    serial = list(iterate_batches(items, cfg, 3, 9, cpu, weak=weak))
    ahead = list(iterate_batches(items, cfg, 3, 9, cpu, weak=weak, workers=2))
    assert len(serial) == len(ahead) == 6
    for step, (a, b) in enumerate(zip(serial, ahead), start=3):
        assert a.keys() == b.keys() and ("points" in a) == weak and ("labels" in a) != weak
        for key in a:
            pairs = zip(a[key], b[key]) if isinstance(a[key], list) else [(a[key], b[key])]
            assert all(torch.equal(x, y) for x, y in pairs), (step, key)
        assert torch.equal(a["image"], make_batch(items, cfg, step, cpu, weak=weak)["image"])
    assert not torch.equal(serial[0]["image"], serial[1]["image"])  # the steps differ


def test_training_with_workers_equals_training_without(tmp_path, data_root):
    cfg = _small(steps=3)
    cfg.optim.threads = 1
    train(cfg, tmp_path / "serial", device="cpu", progress=False)
    cfg.optim.workers = 2
    train(cfg, tmp_path / "workers", device="cpu", progress=False)
    a = load_file(str(tmp_path / "serial" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "workers" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

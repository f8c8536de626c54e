"""The mask head's location prior: values by hand, when it is on, and old checkpoints."""

import pytest
import torch

from lociseg.models.lacss import LacssConfig, LacssModel
from lociseg.models.seghead import PRIOR_FLOOR, PRIOR_PEAK, location_prior


def test_location_prior_by_hand():
    # one 8 px window at the image origin, location at its centre (4, 4), radius 2
    prior = location_prior(torch.tensor([[0, 0]]), torch.tensor([[4.0, 4.0]]), 8, 2.0)[0]
    # pixel (4, 4) has centre (4.5, 4.5): d = 0.5 sqrt(2)
    assert prior[4, 4].item() == pytest.approx(PRIOR_PEAK * (1 - 0.5 * 2**0.5 / 2))
    assert prior[4, 5].item() == pytest.approx(PRIOR_PEAK * (1 - (1.5**2 + 0.5**2) ** 0.5 / 2))
    assert prior[0, 0].item() == PRIOR_FLOOR and prior.max() <= PRIOR_PEAK


@pytest.mark.parametrize(
    ("mode", "setting", "radius"),
    [
        ("supervised", None, 0.0),
        ("weak", None, 16.0),
        ("weak+aux", None, 16.0),
        ("points", None, 0.0),
        ("weak", False, 0.0),
        ("supervised", True, 16.0),
    ],
)
def test_prior_is_on_in_the_weak_modes_unless_set(mode, setting, radius):
    cfg = LacssConfig().override({"mode": mode, "seghead.location_prior": setting, "input.target_diameter": 32.0})
    assert LacssModel(cfg).seghead.prior_radius == radius


def test_weak_masks_start_as_a_disc_not_a_haze():
    """At initialisation a weak model's masks are ~1 inside the radius and ~0 far from the location."""
    torch.manual_seed(0)
    cfg = LacssConfig().override({"mode": "weak", "input.target_diameter": 32.0, "backbone.preset": "tiny"})
    model = LacssModel(cfg).eval()
    with torch.no_grad():
        _, _, dense = model(torch.rand(1, 2, 128, 128))
        logits, origins = model.seghead(dense[0], torch.tensor([[64.0, 64.0]]))
    y = torch.sigmoid(logits[0])
    c = 64 - int(origins[0, 0])
    assert y[c - 4 : c + 4, c - 4 : c + 4].min() > 0.75
    assert y[:8, :8].max() < 0.2


def test_checkpoints_from_before_the_prior_load_without_it(tmp_path):
    import yaml

    from lociseg.models.checkpoint import CONFIG, WEIGHTS, model_config
    from lociseg.train import ExperimentConfig

    (tmp_path / WEIGHTS).write_bytes(b"")  # model_config reads only the config
    full = ExperimentConfig().override({"lacss.mode": "weak"}).to_dict()
    del full["lacss"]["seghead"]["location_prior"]  # a checkpoint written before the option
    (tmp_path / CONFIG).write_text(yaml.safe_dump(full))
    assert model_config(tmp_path).uses_location_prior is False
    full["lacss"]["seghead"]["location_prior"] = None  # written today: the mode decides
    (tmp_path / CONFIG).write_text(yaml.safe_dump(full))
    assert model_config(tmp_path).uses_location_prior is True
    # a sparse user config file with a seghead section gets the default, not the old-checkpoint rule
    sparse = ExperimentConfig.from_dict({"lacss": {"mode": "weak", "seghead": {"instance_kernel": 3}}})
    assert sparse.lacss.uses_location_prior is True

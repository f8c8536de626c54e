"""The model registry: one table of model kinds, read both ways."""

import pytest

from lociseg.config import Config
from lociseg.errors import ConfigError
from lociseg.models import MODEL_TYPES, LacssConfig, LacssModel, build_model, model_type
from lociseg.models.unet import UNetConfig, UNetModel


def test_model_type_and_build_model_read_the_one_table():
    assert set(MODEL_TYPES) == {"lacss", "unet"}
    assert model_type(LacssConfig()) == "lacss" and model_type(UNetConfig()) == "unet"
    assert isinstance(build_model(UNetConfig()), UNetModel)
    assert MODEL_TYPES[model_type(LacssConfig())][1] is LacssModel
    with pytest.raises(ConfigError, match="no model type"):
        model_type(Config())

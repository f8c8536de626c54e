"""``lociseg export-model`` (module lociseg.cli.export_model) on a saved LACSS checkpoint."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from lociseg.cli import export_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from lociseg.models import LacssModel
    from lociseg.models.checkpoint import save_checkpoint
    from lociseg.train.config import ExperimentConfig

    cfg = ExperimentConfig()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "best"
    save_checkpoint(path, LacssModel(cfg.lacss), cfg)
    return path


def _invoke(*args):
    app = typer.Typer()
    app.command()(export_model.main)
    return CliRunner().invoke(app, list(map(str, args)))


def test_torchscript_cli_reports_difference(tmp_path, checkpoint):
    r = _invoke(checkpoint, "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert r.exit_code == 0, r.output
    assert "largest difference to PyTorch" in r.output and (tmp_path / "m.pt").is_file()


def test_unknown_format(tmp_path, checkpoint):
    r = _invoke(checkpoint, "--format", "tflite", "--out", tmp_path / "m")
    assert r.exit_code != 0 and "unknown model format" in str(r.exception)

"""lociseg.train: the experiment config, the training loop and checkpoints."""

from ..models.checkpoint import half_checkpoint, load_checkpoint, save_checkpoint
from .checkpoint import load_experiment_config
from .config import ExperimentConfig
from .loop import train

__all__ = [
    "ExperimentConfig",
    "half_checkpoint",
    "load_checkpoint",
    "load_experiment_config",
    "save_checkpoint",
    "train",
]

"""Training Mask2Former with Lightning: the system, data module, contract callbacks and the run entry point.

Public face:
    run_training(cfg, spec)                      -- train per an ExperimentConfig (the `mask2former train` action)
    load_model_from_checkpoint(path) -> (model, spec)
    Mask2FormerSystem, Mask2FormerDataModule
"""

from mask2former.training.checkpoint_io import load_model_from_checkpoint, read_checkpoint
from mask2former.training.datamodule import Mask2FormerDataModule
from mask2former.training.system import ClipSettings, Mask2FormerSystem, OptimSettings
from mask2former.training.trainer import run_training

__all__ = [
    "ClipSettings", "Mask2FormerDataModule", "Mask2FormerSystem", "OptimSettings",
    "load_model_from_checkpoint", "read_checkpoint", "run_training",
]

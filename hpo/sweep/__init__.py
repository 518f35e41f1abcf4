"""Sweeps: the config (`load_sweep_config`), the driver (`run_sweep`, `resume_sweep`), observers and workspaces."""

from hpo.sweep.config import SweepConfig, load_sweep_config, sweep_config_from_dict
from hpo.sweep.observer import ObserverHub, SweepObserver
from hpo.sweep.workspace import SweepWorkspace, find_sweep_dir

__all__ = [
    "ObserverHub", "SweepConfig", "SweepObserver", "SweepWorkspace", "find_sweep_dir", "load_sweep_config",
    "sweep_config_from_dict",
]

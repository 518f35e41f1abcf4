"""The sweep driver: `hpo plan | run | resume | status`, the run itself (`run_sweep`, `resume_sweep`), the
workspace and its lock, observers, the live view, the baseline, the estimate and summary.json. The sweep config
it runs is `hpo.sweep`.
"""

from hpo.driver.observer import ObserverHub, SweepObserver
from hpo.driver.workspace import SweepWorkspace, find_sweep_dir

__all__ = ["ObserverHub", "SweepObserver", "SweepWorkspace", "find_sweep_dir"]

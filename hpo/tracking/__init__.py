"""MLflow tracking of sweeps: a journaled tracker that survives server outages, the sweep observer that
logs parent/child runs from the engine's events, plots, and cross-sweep comparison.

    from hpo.tracking import MlflowObserver, Tracker, TrackingSettings
    observer = MlflowObserver(sweep_dir)          # pass to the engine; settings from sweep.yaml `tracking:`
"""

from hpo.tracking.journal import Journal
from hpo.tracking.observer import MlflowObserver, log_sweep_from_files, make_sweep_observer, trial_key
from hpo.tracking.replay import FlushResult
from hpo.tracking.settings import TrackingSettings
from hpo.tracking.tracker import Tracker

__all__ = [
    "FlushResult", "Journal", "MlflowObserver", "Tracker", "TrackingSettings", "log_sweep_from_files",
    "make_sweep_observer", "trial_key",
]

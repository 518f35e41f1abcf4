"""File names every reader of a sweep or run folder agrees on, and writes that are never seen half done.

A run's folder (`results_dir`; a trial's folder is one): `spec.yaml` (the spec it ran with), `status.json`
(`skillkit.status`), checkpoints and the latest link (`skillkit.checkpoints`), `train.log`, and, while an
engine-launched trainer runs, `trainer.pid`.

A sweep folder (`<workspace>/<sweep>/`): `sweep.yaml`, `space.yaml`, `summary.json`, `driver.lock`,
`data_staging.json`, `test_scores.json`, `trials/<id>/` (a run folder plus `trial.json`),
`baseline/baseline.json`, and `best/` with `best.json`.

`atomic_write_text`/`atomic_write_json` write through a temporary file in the same folder and rename it
over the target, so `hpo status` in another terminal, a resumed driver or a crash never sees half a file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from skillkit.status.format import STATUS_FILE

# a run's folder
SPEC_FILE = "spec.yaml"
LOG_FILE = "train.log"
PID_FILE = "trainer.pid"
# a sweep folder
SWEEP_FILE = "sweep.yaml"
SPACE_FILE = "space.yaml"
SUMMARY_FILE = "summary.json"
TEST_SCORES_FILE = "test_scores.json"  # top-k candidates' selection and test scores (hpo.promotion.holdout)
LOCK_FILE = "driver.lock"
STAGING_FILE = "data_staging.json"
TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
BASELINE_DIR = "baseline"
BASELINE_FILE = "baseline.json"
BEST_DIR = "best"
BEST_FILE = "best.json"
PLAN_FILE = "plan.json"  # `hpo plan`: the plan it printed, in its output folder

__all__ = [
    "BASELINE_DIR", "BASELINE_FILE", "BEST_DIR", "BEST_FILE", "LOCK_FILE", "LOG_FILE", "PID_FILE", "PLAN_FILE", "SPACE_FILE",
    "SPEC_FILE", "STAGING_FILE", "STATUS_FILE", "SUMMARY_FILE", "SWEEP_FILE", "TEST_SCORES_FILE", "TRIALS_DIR",
    "TRIAL_FILE",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` (parents created) via a synced temporary file renamed over it. The temporary
    name is unique per process and thread, so concurrent writers of one file never share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """JSON with a trailing newline; values json cannot encode are written as their `str()`."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

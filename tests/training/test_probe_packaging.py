"""The probe times the champion's MLflow model packaging with the real skill: `mask2former mlflow_model` on a
probe checkpoint, as promotion of a tracked sweep runs it (`hpo.driver.estimate._probe_packaging`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

from hpo.driver.estimate import _probe_packaging
from skillkit.checkpoints import list_checkpoints
from skillkit.skill_dir import SkillDir
from tests.training.training_support import SHARED_RUN, make_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _ctx(promotion: bool) -> SimpleNamespace:
    config = SimpleNamespace(promotion_enabled=promotion, trial=SimpleNamespace(env={}))
    return SimpleNamespace(config=config, skill=SkillDir(REPO_ROOT))


def test_packaging_the_probe_checkpoint_is_timed(panoptic_data, trained_run, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    _, train_spec = make_config(panoptic_data, trained_run, **SHARED_RUN)
    run_dir = tmp_path / "run_0"  # a probe run's folder with its checkpoint (the shared run stays untouched)
    run_dir.mkdir()
    checkpoint = list_checkpoints(trained_run)[-1].path
    shutil.copy2(checkpoint, run_dir / checkpoint.name)
    seconds, note = _probe_packaging(_ctx(True), run_dir, train_spec)
    assert seconds is not None and seconds > 0, note
    assert note == f"MLflow model packaging {seconds:.1f}s"
    assert (run_dir / "mlflow_model" / "model" / "MLmodel").is_file()
    assert _probe_packaging(_ctx(False), run_dir, train_spec) == (None, None)  # promotion off: nothing packaged
    empty = tmp_path / "run_1"
    empty.mkdir()
    seconds, note = _probe_packaging(_ctx(True), empty, train_spec)  # no checkpoint: said, not guessed
    assert seconds is None and note == "MLflow model packaging not timed (the probe wrote no checkpoint)"

"""automl_policy routing (`hpo train`): explicit value, request phrases, skill flags, missing schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_skill import make_fixture_skill
from skillkit.errors import UserError
from hpo.policy import PLAIN, SWEEP, resolve_policy, route_train
from skillkit.skill_dir import SkillDir


@pytest.mark.parametrize("request_text", [
    "Train Mask2Former on my data but turn off AutoML please",
    "disable automl for this one", "Disable Auto-ML", "no HPO, I know my learning rate", "just plain training",
    "turn AutoML off", "run without hyperparameter search", "switch off the HPO", "automl: off",
    "skip tuning this time", "don't use AutoML",
])
def test_off_phrases(request_text: str) -> None:
    policy, source = resolve_policy(None, request_text)
    assert policy == "off" and source.startswith("request: '")


@pytest.mark.parametrize("request_text", [
    None, "", "train mask2former on coco", "find the best learning rate", "use AutoML with 20 trials",
    "plain old dataset, please tune it", "turn on automl",
])
def test_on_by_default(request_text: str | None) -> None:
    assert resolve_policy(None, request_text) == ("on", "default")


def test_explicit_wins_over_the_request() -> None:
    assert resolve_policy("on", "turn off AutoML") == ("on", "explicit")
    assert resolve_policy("OFF", "use AutoML") == ("off", "explicit")
    with pytest.raises(UserError, match=r"--automl-policy 'maybe' is not allowed; allowed: on, off"):
        resolve_policy("maybe", None)


def test_routes(tmp_path: Path) -> None:
    enabled = SkillDir(make_fixture_skill(tmp_path / "enabled"))
    assert route_train(enabled).route == SWEEP
    assert route_train(enabled, request="please turn off AutoML").route == PLAIN
    assert route_train(enabled, explicit="off").route == PLAIN
    # The override lasts for that run only: the next request routes by the defaults again.
    assert route_train(enabled).route == SWEEP

    disabled = SkillDir(make_fixture_skill(tmp_path / "disabled", automl_enabled=False))
    decision = route_train(disabled)
    assert decision.route == PLAIN and "AutoML is disabled for skill" in decision.message

    unpackaged = SkillDir(make_fixture_skill(tmp_path / "unpackaged", with_schema=False))
    decision = route_train(unpackaged)
    assert decision.route == PLAIN
    assert "AutoML is enabled for this skill but not runnable until schemas are generated" in decision.message
    assert "train.schema.json" in decision.message


def hpo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpo.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CI": "1"})


def test_hpo_train_plain_runs_one_training(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill")
    done = hpo("train", "--skill-dir", str(skill), "--request", "no HPO please", "--results-dir", str(tmp_path / "out"),
               "train.num_epochs=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "automl_policy off (request: 'no HPO')" in done.stdout
    lines = [json.loads(line) for line in (tmp_path / "out" / "status.json").read_text().splitlines()]
    assert lines[-1]["status"] == "SUCCESS" and lines[-1]["epoch"] == 1  # the last of two epochs, TAO-numbered
    assert not (tmp_path / "hpo_workspace").exists()


def test_hpo_train_sweeps_by_default(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill")
    done = hpo("train", "--skill-dir", str(skill), "--backend", "optuna", "--algorithm", "random", "--max-trials", "2",
               "--yes", "train.num_epochs=2", "fixture.sleep_s=0.01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "automl_policy on (default): running a hyperparameter sweep" in done.stdout
    (sweep_dir,) = list((tmp_path / "hpo_workspace").iterdir())
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["counts"] == {"COMPLETED": 2} and summary["max_epochs"] == 2


def test_hpo_train_without_schemas_trains_plainly_and_says_why(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill", with_schema=False)
    done = hpo("train", "--skill-dir", str(skill), "--results-dir", str(tmp_path / "out"), "train.num_epochs=1",
               cwd=tmp_path)
    assert "not runnable until schemas are generated" in done.stdout
    assert done.returncode == 0, done.stderr

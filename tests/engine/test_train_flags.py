"""`hpo train` flags mean what they say: a flag and the sweep config naming different values is an error
naming both; a flag fills what the config leaves unset; flags of the route not taken are refused."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from hpo.cli import main
from hpo.driver.commands import sweep_data_for_train
from tests.engine.fixture_skill import make_fixture_skill


@pytest.fixture()
def skill(tmp_path: Path) -> Path:
    return make_fixture_skill(tmp_path / "skill")


def _sweep_file(tmp_path: Path, skill: Path, **extra) -> Path:
    data = {"name": "s", "skill_dir": str(skill), "workspace": "ws-from-config", "backend": "optuna",
            "algorithm": {"name": "random", "max_trials": 2}, "tracking": {"enabled": False}, **extra}
    path = tmp_path / "cfg" / "sweep.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_flag_and_config_naming_different_values_is_an_error_naming_both(tmp_path, skill, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("train:\n  num_epochs: 1\n")
    sweep = _sweep_file(tmp_path, skill, base_spec=str(tmp_path / "other.yaml"))
    code = main(["train", "--skill-dir", str(skill), "--sweep", str(sweep), "--workspace", str(tmp_path / "W"),
                 "--spec", str(spec), "--max-trials", "2", "--yes"])
    err = capsys.readouterr().err
    assert code == 7
    assert f"--workspace {tmp_path / 'W'} and the sweep config's workspace: ws-from-config" in err
    assert f"--spec {spec} and the sweep config's base_spec: {tmp_path / 'other.yaml'}" in err
    assert "--max-trials" not in err  # equal to the config's value: no conflict
    assert not (tmp_path / "W").exists() and not (tmp_path / "cfg" / "ws-from-config").exists()


def test_flags_fill_what_the_config_leaves_unset_and_overrides_come_last(tmp_path, skill) -> None:
    sweep = _sweep_file(tmp_path, skill, spec_overrides={"train.num_epochs": 3, "fixture.sleep_s": 0.0})
    spec = tmp_path / "spec.yaml"
    spec.write_text("train:\n  num_epochs: 1\n")
    args = argparse.Namespace(sweep=str(sweep), skill_dir=str(skill), spec=str(spec), workspace=None, algorithm=None,
                              backend=None, max_trials=None, overrides=["train.num_epochs=2"])
    data, base_dir, _ = sweep_data_for_train(args)
    assert data["base_spec"] == str(spec.resolve()) and data["workspace"] == "ws-from-config"
    assert base_dir == sweep.parent.resolve()
    assert data["spec_overrides"][-1] == "train.num_epochs=2" and "train.num_epochs=3" in data["spec_overrides"]


def test_sweep_flags_on_the_plain_route_are_refused(tmp_path, skill, capsys) -> None:
    code = main(["train", "--skill-dir", str(skill), "--automl-policy", "off", "--max-trials", "4",
                 "--results-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 7 and "--max-trials configures a sweep, but this request runs one plain training" in err
    assert not (tmp_path / "out").exists()


def test_results_dir_on_the_sweep_route_is_refused(tmp_path, skill, capsys) -> None:
    code = main(["train", "--skill-dir", str(skill), "--results-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 7 and "--results-dir names the folder of one plain training, but this request runs a sweep" in err

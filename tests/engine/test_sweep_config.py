"""Sweep config validation: every mistake is one clear message naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skillkit.errors import SweepConfigError
from hpo.sweep.config import load_sweep_config, resolve_metric, sweep_config_from_dict


def good(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "s1", "algorithm": {"name": "tpe", "max_trials": 4}, "workspace": str(tmp_path)}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


BAD_CONFIGS = [
    # (changes, regex the message must match)
    ({"name": None}, r"missing required key 'name'"),
    ({"algorithm": None}, r"missing required key 'algorithm'"),
    ({"name": "has space"}, r"'name' = 'has space' does not match the pattern"),
    ({"algoritm": {"name": "tpe"}}, r"unknown key 'algoritm'.*Did you mean 'algorithm'\?"),
    ({"algorithm": {"name": "tpee"}}, r"'algorithm.name' = 'tpee' is not allowed; allowed: mfbo, random, tpe, bayesian.*Did you mean 'tpe'\?"),
    ({"algorithm": {"max_trails": 3}}, r"unknown key 'algorithm.max_trails'.*Did you mean 'max_trials'\?"),
    ({"algorithm": {"max_trials": 0}}, r"'algorithm.max_trials' must be >= 1, got 0"),
    ({"algorithm": {"max_trials": "ten"}}, r"'algorithm.max_trials' must be of type integer, got 'ten'"),
    ({"algorithm": {"max_epochs": -2}}, r"'algorithm.max_epochs' must be >= 1, got -2"),
    ({"algorithm": {"name": "asha", "reduction_factor": 1}}, r"'algorithm.reduction_factor' must be >= 2, got 1"),
    ({"algorithm": {"name": "asha", "grace_period": 5, "max_epochs": 3}}, r"'algorithm.grace_period' = 5 exceeds 'algorithm.max_epochs' = 3"),
    ({"algorithm": {"name": "tpe", "sampler": "random"}}, r"'algorithm.sampler' only applies when algorithm.name is a scheduler"),
    ({"algorithm": {"name": "asha", "pruner": "median"}}, r"'algorithm.pruner' only applies when algorithm.name is a sampler"),
    ({"algorithm": {"name": "tpe", "pruner": "asha"}}, r"'algorithm.pruner' = 'asha' is not allowed; allowed: none, median, successive_halving, hyperband"),
    ({"algorithm": {"name": "pbt"}, "backend": "optuna"}, r"algorithm 'pbt' needs backend 'ray'"),
    ({"algorithm": {"name": "tpe", "brackets": 2}}, r"'algorithm.brackets' = 2 has no effect with algorithm 'tpe'.*applies to schedulers asha"),
    ({"algorithm": {"name": "asha", "population_size": 4}}, r"'algorithm.population_size' = 4 has no effect.*schedulers pbt"),
    ({"algorithm": {"name": "random", "grid_points": 4}}, r"'algorithm.grid_points' = 4 has no effect.*samplers grid"),
    ({"algorithm": {"name": "hyperband", "grace_period": 2}}, r"'algorithm.grace_period' = 2 is not supported by 'hyperband' on backend 'ray'"),
    ({"algorithm": {"name": "asha", "brackets": 2}, "backend": "optuna"}, r"'algorithm.brackets' = 2 is not supported by 'asha' on backend 'optuna'"),
    ({"algorithm": {"name": "pbt", "max_trials": 4, "population_size": 6, "max_epochs": 4}}, r"'algorithm.population_size' = 6 and 'algorithm.max_trials' = 4 disagree"),
    ({"algorithm": {"name": "pbt", "perturbation_interval": 4, "max_epochs": 4}}, r"'algorithm.perturbation_interval' = 4 must be smaller than 'algorithm.max_epochs' = 4"),
    ({"backend": "tune"}, r"'backend' = 'tune' is not allowed; allowed: ray, optuna"),
    ({"storage": "postgresql://u@h/db"}, r"'storage' = 'postgresql://u@h/db' applies to backend optuna only"),
    ({"storage": "redis://h", "backend": "optuna"}, r"'storage' = 'redis://h' is not a database URL; allowed: sqlite:///"),
    ({"direction": "up"}, r"'direction' = 'up' is not allowed; allowed: maximize, minimize"),
    ({"metric": "val_loss", "direction": "maximize"}, r"'direction' = 'maximize' with metric 'val_loss': a loss is minimised"),
    ({"resources": {"gpus_per_trial": 1.5}}, r"'resources.gpus_per_trial' = 1.5: fractions are allowed only below 1"),
    ({"resources": {"gpus_per_trial": 0.3}, "backend": "optuna"}, r"'resources.gpus_per_trial' = 0.3: on backend optuna a fraction must be 1/N"),
    ({"resources": {"gpus_per_trial": 2, "gpus": 1}}, r"'resources.gpus_per_trial' = 2 exceeds 'resources.gpus' = 1"),
    ({"resources": {"max_concurrent": 0}}, r"'resources.max_concurrent' must be >= 1, got 0"),
    ({"resources": {"cpus_per_trial": 0}}, r"'resources.cpus_per_trial' must be > 0, got 0"),
    ({"resources": {"cpu": 2}}, r"unknown key 'resources.cpu'.*Did you mean"),
    ({"spec_overrides": ["train.optim.lr"]}, r"'spec_overrides' = \['train.optim.lr'\] has the wrong form: .*'a.b=value'"),
    ({"seed": -1}, r"'seed' must be >= 0, got -1"),
    ({"base_spec": "missing.yaml"}, r"'base_spec' = 'missing.yaml' \(.*missing.yaml\) is not an existing file"),
    ({"skill_dir": "no_such_dir"}, r"'skill_dir' = 'no_such_dir' .* is not an existing folder"),
    ({"datasets": {"train": "nowhere"}}, r"'datasets.train' = 'nowhere' .* is not an existing folder"),
    ({"trial": {"timeout_s": 0}}, r"'trial.timeout_s' must be > 0, got 0"),
    ({"tracking": {"uri": "http://x"}}, r"unknown key 'tracking.uri'.*Did you mean 'tracking_uri'\?"),
    ({"search_space": {"parameters": ["a", "a"]}}, r"'search_space.parameters' lists the same item twice"),
    ({"algorithm": {"time_budget_s": 0}}, r"'algorithm.time_budget_s' must be > 0, got 0"),
    ({"backend": "ray", "ray": {"storage": "/shared/ray"}}, r"'ray.storage' = '/shared/ray' is not an s3:// URI: .*s3://<bucket>/<prefix>"),
    ({"backend": "ray", "ray": {"storage": "s3://Bad_Bucket/x"}}, r"'ray.storage': S3 URI 's3://Bad_Bucket/x' names the bucket 'Bad_Bucket', which is not a valid bucket name"),
    ({"backend": "optuna", "ray": {"storage": "s3://bucket/x"}}, r"'ray.storage' = 's3://bucket/x' applies to backend ray"),
]


@pytest.mark.parametrize("changes,message", BAD_CONFIGS, ids=[m[:40] for _, m in BAD_CONFIGS])
def test_bad_config_is_one_clear_error(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepConfigError, match=message) as caught:
        sweep_config_from_dict(good(tmp_path, **changes), base_dir=tmp_path, source="bad.yaml")
    assert str(caught.value).startswith("sweep config 'bad.yaml'")
    assert caught.value.exit_code == 7


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    data = good(tmp_path, backend="tune", seed=-3, algorithm={"max_trials": 0})
    with pytest.raises(SweepConfigError, match=r"has 3 problems: \(1\) .*\(2\) .*\(3\)"):
        sweep_config_from_dict(data, base_dir=tmp_path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: a\nalgorithm: {name: tpe\n")
    with pytest.raises(SweepConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_sweep_config(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=r"must be a mapping of keys"):
        sweep_config_from_dict(["name"], base_dir=tmp_path)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("{}\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "algorithm": {"name": "asha"}, "base_spec": "spec.yaml",
                                    "spec_overrides": {"train.optim.lr": 0.01}}))
    config = load_sweep_config(path)
    assert config.backend == "ray" and config.metric == "kpi" and config.direction is None
    assert config.algorithm.sampler == "random" and config.algorithm.scheduler == "asha"
    assert config.algorithm.max_trials == 10 and config.resources.max_concurrent == 1
    assert config.base_spec == tmp_path / "spec.yaml" and config.workspace == tmp_path / "workspace"
    assert config.spec_overrides == ("train.optim.lr=0.01",)
    # The resolved form written to the workspace loads back to the same config.
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(config.to_dict()))
    reloaded = load_sweep_config(again)
    assert reloaded.algorithm == config.algorithm and reloaded.base_spec == config.base_spec


@pytest.mark.parametrize("name,backend,sampler,scheduler", [
    ("tpe", "optuna", "tpe", "none"), ("bohb", "optuna", "tpe", "hyperband"), ("bohb", "ray", "bohb", "bohb"),
    ("hyperband", "optuna", "random", "hyperband"), ("pbt", "ray", "random", "pbt"), ("grid", "ray", "grid", "none"),
    ("mfbo", "optuna", "mfbo", "hyperband"), ("mfbo", "ray", "mfbo", "hyperband"),
])
def test_algorithm_resolution(tmp_path: Path, name: str, backend: str, sampler: str, scheduler: str) -> None:
    config = sweep_config_from_dict(good(tmp_path, algorithm={"name": name, "max_epochs": 4}, backend=backend),
                                    base_dir=tmp_path)
    assert (config.algorithm.sampler, config.algorithm.scheduler) == (sampler, scheduler)


def test_no_algorithm_name_means_the_default(tmp_path: Path) -> None:
    """`hpo run` with no algorithm.name runs the benchmark's winner (hpo.sweep.config_rules.DEFAULT_ALGORITHM)."""
    from hpo.sweep.config_rules import DEFAULT_ALGORITHM

    config = sweep_config_from_dict(good(tmp_path, algorithm=None) | {"algorithm": {"max_trials": 4}, "backend": "optuna"},
                                    base_dir=tmp_path)
    assert DEFAULT_ALGORITHM == "mfbo"
    assert (config.algorithm.name, config.algorithm.sampler, config.algorithm.scheduler) == ("mfbo", "mfbo", "hyperband")
    with pytest.raises(SweepConfigError, match=r"'algorithm.grid_points' = 3 has no effect with algorithm 'mfbo'"):
        sweep_config_from_dict(good(tmp_path, algorithm=None) | {"algorithm": {"grid_points": 3}}, base_dir=tmp_path)


def test_pruner_maps_to_scheduler(tmp_path: Path) -> None:
    config = sweep_config_from_dict(good(tmp_path, algorithm={"pruner": "successive_halving"}), base_dir=tmp_path)
    assert config.algorithm.scheduler == "asha"


@pytest.mark.parametrize("metric,direction,expected", [
    ("kpi", None, ("mIoU", "maximize")), ("PQ", None, ("PQ", "maximize")), ("val_loss", None, ("val_loss", "minimize")),
    ("train_loss", "minimize", ("train_loss", "minimize")), ("mIoU", "minimize", ("mIoU", "minimize")),
])
def test_metric_and_direction(metric: str, direction: str | None, expected: tuple[str, str]) -> None:
    assert resolve_metric(metric, direction, "mIoU") == expected

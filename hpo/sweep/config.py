"""Sweep configuration: YAML validated by our JSON Schema (`sweep_schema.json`), then by the rules a schema
cannot express, into one frozen `SweepConfig`.

Why two layers: the JSON Schema is the published, tool-readable contract (types, enums, ranges, unknown
keys); the semantic rules (a PBT sweep needs Ray, a knob that does not apply to the chosen algorithm is an
error rather than silently ignored) need the whole config. Every problem is reported at once, each naming
the key, the value and what is allowed, with a did-you-mean for misspelt keys and values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpo.sweep.config_rules import (
    DEFAULT_ALGORITHM,
    KNOB_SCOPE,
    MFBO_MIN_POINTS,
    MFBO_SURROGATE,
    PBT_KEEP_LAST,
    SAMPLERS,
    SCHEDULER_ALGORITHMS,
    _absolute,
    did_you_mean,
    raise_problems,
    resolve_algorithm,
    schema_problems,
    semantic_problems,
    sweep_schema,
)
from skillkit.errors import SweepConfigError
from skillkit.skill_dir import default_skill_dir
from skillkit.spec.yaml_io import SpecLoader

__all__ = [
    "AlgorithmConfig", "CheckpointsConfig", "DatasetsConfig", "KNOB_SCOPE", "ResourcesConfig", "SAMPLERS", "SCHEDULER_ALGORITHMS",
    "RayConfig", "SearchSpaceConfig", "SweepConfig", "TrackingConfig", "TrialConfig", "WorkersConfig", "did_you_mean", "load_sweep_config",
    "resolve_algorithm", "resolve_metric", "schema_problems", "semantic_problems", "sweep_config_from_dict",
    "sweep_schema",
]


@dataclass(frozen=True)
class AlgorithmConfig:
    """The search algorithm, resolved to one sampler (who proposes) and one scheduler (who stops early).

    `name` is what the user wrote; `sampler` is one of random|tpe|bayesian|cmaes|grid|bfbo|dehb|bohb and
    `scheduler` one of none|median|asha|hyperband|hyperband_es|bohb|pbt, already mapped for the backend
    (Optuna runs `bohb` as TPE + Hyperband pruner, its documented BOHB equivalent; `dehb` is differential-
    evolution proposals with Hyperband budgets on both backends).
    """

    name: str
    sampler: str
    scheduler: str
    max_trials: int
    max_epochs: int | None
    grace_period: int = 1
    reduction_factor: int = 3
    brackets: int = 1
    population_size: int | None = None
    perturbation_interval: int = 1
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    perturbation_factor: float = 1.2
    n_startup_trials: int = 4
    grid_points: int = 3
    time_budget_s: float | None = None
    grid_values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    mutation_factor: float = 0.5
    crossover_prob: float = 0.5
    early_stop_threshold: float = 0.8
    min_early_stop_epochs: int = 4
    early_stop_margin: float = 0.05
    random_fraction: float = 0.0
    model_budget: str = "highest"
    surrogate: str = MFBO_SURROGATE


@dataclass(frozen=True)
class ResourcesConfig:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 1
    gpus: int | None = None


@dataclass(frozen=True)
class SearchSpaceConfig:
    parameters: tuple[str, ...] | None = None
    custom_param_ranges: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pinned: Mapping[str, Any] = field(default_factory=dict)
    override_automl_disabled_params: bool = False


@dataclass(frozen=True)
class TrialConfig:
    timeout_s: float | None = None
    stop_grace_s: float = 120.0
    max_consecutive_failures: int = 3
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointsConfig:
    """Checkpoint disk during the sweep (the rule is in `hpo.trials.retention`)."""

    retention: str = "bounded"
    keep_last: int = 1


@dataclass(frozen=True)
class RayConfig:
    """Backend ray on a cluster: the cluster to join (None: RAY_ADDRESS, else a Ray of the sweep's own), how
    often Tune restarts a trial whose actor died (a lost node; it continues from its last checkpoint), and
    `storage`: an `s3://bucket/prefix` through which trial checkpoints and Ray's experiment state travel, so
    the nodes need no shared filesystem (`hpo.backends.ray_storage`); None: the workspace, on every node."""

    address: str | None = None
    max_failures: int = 2
    storage: str | None = None


@dataclass(frozen=True)
class WorkersConfig:
    """Liveness of the workers sharing one Optuna study: heartbeat, when a silent worker's trial is re-queued,
    and how often one trial may be re-queued."""

    heartbeat_interval_s: int = 20
    grace_period_s: int = 120
    max_retries: int = 2


@dataclass(frozen=True)
class DatasetsConfig:
    """Dataset roots: `train` and `eval` (validation: ranks the trials), and an optional held-out `test`, never
    seen by a trial: the top-k candidates are evaluated on it once after the sweep (`hpo.promotion.holdout`)."""

    train: str | None = None
    eval: str | None = None
    type: str | None = None
    test: str | None = None


@dataclass(frozen=True)
class TrackingConfig:
    """Read by `hpo.tracking`; the engine only passes it along."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment_name: str | None = None
    registered_model_name: str | None = None
    model_alias: str = "champion"


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config with every path absolute and every default filled in."""

    name: str
    skill_dir: Path
    action: str
    base_spec: Path | None
    spec_overrides: tuple[str, ...]
    datasets: DatasetsConfig
    algorithm: AlgorithmConfig
    metric: str
    direction: str | None
    backend: str
    storage: str | None
    workspace: Path
    seed: int
    resources: ResourcesConfig
    search_space: SearchSpaceConfig
    trial: TrialConfig
    baseline_enabled: bool
    baseline_timeout_s: float | None
    tracking: TrackingConfig
    promotion_enabled: bool
    source: str = "<sweep config>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    workspace_uri: str | None = None  # an s3:// workspace, mirrored from the local `workspace` folder
    checkpoints: CheckpointsConfig = field(default_factory=CheckpointsConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    @property
    def sweep_dir(self) -> Path:
        return self.workspace / self.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data (written to the workspace's sweep.yaml)."""
        return json.loads(json.dumps(self.raw, default=str))


# ----------------------------------------------------------------------------------------------- loading


def read_sweep_config_data(path: str | Path) -> Any:
    """The parsed YAML of a sweep config file, not yet validated (safe loading)."""
    path = Path(path)
    if not path.is_file():
        raise SweepConfigError(f"sweep config '{path}' does not exist or is not a file.")
    try:
        return yaml.load(path.read_text(), Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SweepConfigError(f"sweep config '{path}' is not valid YAML{where}: {getattr(error, 'problem', error)}.") from None


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file; relative paths are taken relative to its folder."""
    data = read_sweep_config_data(path)
    return sweep_config_from_dict(data, base_dir=Path(path).resolve().parent, source=str(path))


def sweep_config_from_dict(data: Any, *, base_dir: Path, source: str = "<sweep config>") -> SweepConfig:
    """Validate `data` (the parsed YAML) and build the config; raises one SweepConfigError listing every problem."""
    if not isinstance(data, Mapping):
        raise SweepConfigError(f"sweep config '{source}' must be a mapping of keys (name, algorithm, ...), got {type(data).__name__}.")
    problems = schema_problems(data)
    if problems:
        raise_problems(problems, source)
    problems = semantic_problems(data, base_dir)
    if problems:
        raise_problems(problems, source)
    return _build(data, base_dir=base_dir, source=source)


# ---------------------------------------------------------------------------------------------- build


def override_list(value: Any) -> tuple[str, ...]:
    """Spec overrides as `a.b=value` strings, from the list or the mapping form of `spec_overrides`."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(f"{key}={json.dumps(item)}" for key, item in value.items())
    return tuple(value)


def _build(data: Mapping[str, Any], *, base_dir: Path, source: str) -> SweepConfig:
    algorithm: dict[str, Any] = dict(data["algorithm"])
    backend = data.get("backend", "ray")
    sampler, scheduler = resolve_algorithm(algorithm, backend)
    max_trials = algorithm.get("population_size", algorithm.get("max_trials", 10))
    algo = AlgorithmConfig(
        name=algorithm.get("name", DEFAULT_ALGORITHM), sampler=sampler, scheduler=scheduler, max_trials=int(max_trials),
        max_epochs=algorithm.get("max_epochs"),
        grace_period=int(algorithm.get("grace_period", 1)),
        reduction_factor=int(algorithm.get("reduction_factor", 3)),
        brackets=int(algorithm.get("brackets", 1)),
        population_size=int(max_trials) if scheduler == "pbt" else None,
        perturbation_interval=int(algorithm.get("perturbation_interval", 1)),
        quantile_fraction=float(algorithm.get("quantile_fraction", 0.25)),
        resample_probability=float(algorithm.get("resample_probability", 0.25)),
        perturbation_factor=float(algorithm.get("perturbation_factor", 1.2)),
        n_startup_trials=int(algorithm.get("n_startup_trials", MFBO_MIN_POINTS if sampler == "mfbo" else 4)),
        grid_points=int(algorithm.get("grid_points", 3)),
        time_budget_s=algorithm.get("time_budget_s"),
        grid_values={str(k): tuple(v) for k, v in (algorithm.get("grid_values") or {}).items()},
        mutation_factor=float(algorithm.get("mutation_factor", 0.5)),
        crossover_prob=float(algorithm.get("crossover_prob", 0.5)),
        early_stop_threshold=float(algorithm.get("early_stop_threshold", 0.8)),
        min_early_stop_epochs=int(algorithm.get("min_early_stop_epochs", 4)),
        early_stop_margin=float(algorithm.get("early_stop_margin", 0.05)),
        random_fraction=float(algorithm.get("random_fraction", 0.0)),
        model_budget=str(algorithm.get("model_budget", "highest")),
        surrogate=str(algorithm.get("surrogate", MFBO_SURROGATE)),
    )
    res = data.get("resources", {})
    resources = ResourcesConfig(
        cpus_per_trial=float(res.get("cpus_per_trial", 1)), gpus_per_trial=float(res.get("gpus_per_trial", 0)),
        max_concurrent=int(res.get("max_concurrent", 1)), gpus=res.get("gpus"),
    )
    space = data.get("search_space", {})
    search_space = SearchSpaceConfig(
        parameters=tuple(space["parameters"]) if space.get("parameters") else None,
        custom_param_ranges=dict(space.get("custom_param_ranges", {})),
        pinned=dict(space.get("pinned", {})),
        override_automl_disabled_params=bool(space.get("override_automl_disabled_params", False)),
    )
    trial = data.get("trial", {})
    trial_config = TrialConfig(
        timeout_s=trial.get("timeout_s"), stop_grace_s=float(trial.get("stop_grace_s", 120)),
        max_consecutive_failures=int(trial.get("max_consecutive_failures", 3)),
        env={str(k): str(v) for k, v in trial.get("env", {}).items()},
    )
    checkpoints_data = data.get("checkpoints", {})
    keep_all_default = bool(data.get("promotion", {}).get("keep_all_checkpoints", False))
    checkpoints = CheckpointsConfig(
        retention=checkpoints_data.get("retention", "keep_all" if keep_all_default else "bounded"),
        keep_last=int(checkpoints_data.get("keep_last", PBT_KEEP_LAST if scheduler == "pbt" else 1)),
    )
    workers_data = data.get("workers", {})
    workers = WorkersConfig(
        heartbeat_interval_s=int(workers_data.get("heartbeat_interval_s", 20)),
        grace_period_s=int(workers_data.get("grace_period_s", 120)),
        max_retries=int(workers_data.get("max_retries", 2)),
    )
    ray_data = data.get("ray", {})
    ray = RayConfig(address=ray_data.get("address"), max_failures=int(ray_data.get("max_failures", 2)),
                    storage=ray_data.get("storage"))
    ds = data.get("datasets", {})

    def dataset_root(value: str | None) -> str | None:
        if not value:
            return None
        return value if "://" in value else str(_absolute(value, base_dir))

    datasets = DatasetsConfig(train=dataset_root(ds.get("train")), eval=dataset_root(ds.get("eval")), type=ds.get("type"),
                              test=dataset_root(ds.get("test")))
    tracking_data = data.get("tracking", {})
    tracking = TrackingConfig(
        enabled=bool(tracking_data.get("enabled", True)), tracking_uri=tracking_data.get("tracking_uri"),
        experiment_name=tracking_data.get("experiment_name"),
        registered_model_name=tracking_data.get("registered_model_name"),
        model_alias=tracking_data.get("model_alias", "champion"),
    )
    baseline = data.get("baseline", {})
    # The skill used is recorded even when defaulted, so a resumed sweep drives the same skill.
    skill_dir = _absolute(data["skill_dir"], base_dir) if data.get("skill_dir") else default_skill_dir().resolve()
    base_spec = _absolute(data["base_spec"], base_dir) if data.get("base_spec") else None
    workspace_setting = str(data.get("workspace", "workspace"))
    workspace_uri = workspace_setting if "://" in workspace_setting else None
    if workspace_uri:
        from hpo.storage.sync import default_mirror_dir

        workspace = default_mirror_dir(workspace_uri).resolve()
    else:
        workspace = _absolute(workspace_setting, base_dir)
    raw = {
        "name": data["name"], "skill_dir": str(skill_dir) if skill_dir else None, "action": data.get("action", "train"),
        "base_spec": str(base_spec) if base_spec else None,"spec_overrides": list(override_list(data.get("spec_overrides"))),
        "datasets": {k: v for k, v in vars(datasets).items() if v is not None},
        "algorithm": {k: (dict((n, list(p)) for n, p in v.items()) if k == "grid_values" else v)
                      for k, v in vars(algo).items() if v is not None and k not in ("sampler", "scheduler")}
        | ({"sampler": algorithm["sampler"]} if "sampler" in algorithm else {})
        | ({"pruner": algorithm["pruner"]} if "pruner" in algorithm else {}),
        "metric": data.get("metric", "kpi"), "backend": backend, "storage": data.get("storage"),
        "workspace": workspace_uri or str(workspace), "seed": int(data.get("seed", 0)),
        "resources": {k: v for k, v in vars(resources).items() if v is not None},
        "search_space": {
            "parameters": list(search_space.parameters) if search_space.parameters else None,
            "custom_param_ranges": dict(search_space.custom_param_ranges), "pinned": dict(search_space.pinned),
            "override_automl_disabled_params": search_space.override_automl_disabled_params,
        },
        "trial": {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in vars(trial_config).items()},
        "checkpoints": dict(vars(checkpoints)),
        "baseline": {"enabled": bool(baseline.get("enabled", True)), "timeout_s": baseline.get("timeout_s")},
        "tracking": {"enabled": tracking.enabled, **dict(data.get("tracking", {}))},
        "promotion": {"enabled": bool(data.get("promotion", {}).get("enabled", True)), **dict(data.get("promotion", {}))},
    }
    if data.get("deploy"):
        raw["deploy"] = dict(data["deploy"])
    # Keep only the keys the schema knows (pbt's population is stored as max_trials).
    raw["algorithm"].pop("population_size", None)
    for knob in KNOB_SCOPE:
        if knob not in algorithm:
            raw["algorithm"].pop(knob, None)
    if data.get("direction"):
        raw["direction"] = data["direction"]
    if "workers" in data:
        raw["workers"] = dict(vars(workers))
    if "ray" in data:
        raw["ray"] = {k: v for k, v in vars(ray).items() if v is not None}
    for key in ("storage", "base_spec"):
        if raw[key] is None:
            del raw[key]
    return SweepConfig(
        name=data["name"], skill_dir=skill_dir, action=data.get("action", "train"), base_spec=base_spec,
        spec_overrides=override_list(data.get("spec_overrides")), datasets=datasets, algorithm=algo,
        metric=data.get("metric", "kpi"), direction=data.get("direction"), backend=backend, storage=data.get("storage"),
        workspace=workspace, seed=int(data.get("seed", 0)), resources=resources, search_space=search_space,
        trial=trial_config, baseline_enabled=bool(baseline.get("enabled", True)),
        baseline_timeout_s=baseline.get("timeout_s"), tracking=tracking,
        promotion_enabled=bool(data.get("promotion", {}).get("enabled", True)), source=source, raw=raw,
        workspace_uri=workspace_uri, checkpoints=checkpoints, workers=workers, ray=ray,
    )


def resolve_metric(metric: str, direction: str | None, monitoring_metric: str) -> tuple[str, str]:
    """(metric name, direction): `kpi` means the skill's monitoring metric; the direction is explicit, else
    minimise only when the name contains 'loss' (mIoU, PQ, AP are maximised)."""
    name = monitoring_metric if metric == "kpi" else metric
    if direction is None:
        direction = "minimize" if "loss" in name.lower() else "maximize"
    return name, direction

"""The rules a sweep config must follow beyond its JSON Schema, and readable messages for both.

`schema_problems` turns jsonschema errors into sentences naming the key, the value and what is allowed (with
a did-you-mean for misspelt keys and values); `semantic_problems` checks what a schema cannot say: a PBT
sweep needs Ray, a knob that does not apply to the chosen algorithm is an error rather than silently
ignored, paths must exist, a loss is not maximised.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from hpo.sweep import algorithms
from skillkit.errors import SweepConfigError

SCHEMA_PATH = Path(__file__).with_name("sweep_schema.json")

# The algorithm names and what they resolve to: `hpo.sweep.algorithms` (the backends key their builders by them).
SAMPLERS = algorithms.names_of("sampler")
SCHEDULER_ALGORITHMS = algorithms.names_of("scheduler")
# Algorithms that are neither a sampler nor a scheduler propose configurations their own way.
OWN_PROPOSALS = {name: algorithms.ALGORITHMS[name].proposals for name in algorithms.names_of("own")}
#: What `hpo run` uses when the sweep config names no algorithm.name (and what the quickstart runs): the
#: search-efficiency benchmark's winner (README "Default algorithm"; benchmarks/results/search_efficiency.json).
DEFAULT_ALGORITHM = "mfbo"
#: mfbo's default n_startup_trials: the fewest same-budget results its model is fitted on. Benchmarked
#: (benchmarks/search_efficiency/README.md, "The default algorithm"): 5 beat the earlier 8 over ten suites at
#: 20 seeds, 2.80x vs 2.58x geometric-mean speed-up over TAO Hyperband (benchmarks/results/mfbo_variants/).
MFBO_MIN_POINTS = 5
#: mfbo's default model on the same-budget results: a GP (benchmarks/search_efficiency/README.md, "The default
#: algorithm"; TPE, the default before, is `surrogate: tpe`).
MFBO_SURROGATE = "gp"
PRUNER_TO_SCHEDULER = algorithms.PRUNERS

# Which resolved schedulers / samplers each knob acts on; a knob set for anything else is an error.
KNOB_SCOPE: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "grace_period": (("scheduler", ("median", "asha", "hyperband", "bohb", "hyperband_es")),),
    "reduction_factor": (("scheduler", ("asha", "hyperband", "bohb", "hyperband_es")),),
    "brackets": (("scheduler", ("asha",)),),
    "population_size": (("scheduler", ("pbt",)),),
    "perturbation_interval": (("scheduler", ("pbt",)),),
    "quantile_fraction": (("scheduler", ("pbt",)),),
    "resample_probability": (("scheduler", ("pbt",)),),
    "perturbation_factor": (("scheduler", ("pbt",)),),
    "n_startup_trials": (("sampler", ("tpe", "bayesian", "bohb", "bfbo", "mfbo")), ("scheduler", ("median",))),
    "mutation_factor": (("sampler", ("dehb",)),),
    "crossover_prob": (("sampler", ("dehb",)),),
    "early_stop_threshold": (("scheduler", ("hyperband_es",)),),
    "min_early_stop_epochs": (("scheduler", ("hyperband_es",)),),
    "early_stop_margin": (("scheduler", ("hyperband_es",)),),
    "random_fraction": (("sampler", ("mfbo",)),),
    "model_budget": (("sampler", ("mfbo",)),),
    "surrogate": (("sampler", ("mfbo",)),),
    "grid_points": (("sampler", ("grid",)),),
    "grid_values": (("sampler", ("grid",)),),
}
# Knobs one backend's implementation of a scheduler does not have (Ray's HyperBand derives its rungs from
# max_epochs and reduction_factor; Optuna's successive halving has a single bracket).
BACKEND_UNSUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "ray": {"grace_period": ("hyperband", "bohb", "hyperband_es")},
    "optuna": {"brackets": ("asha",)},
}
# A PBT donor's checkpoint may be any of the newest ones Ray still holds a pointer to (its CheckpointConfig
# keeps this many), so PBT trials keep at least as many during the sweep.
PBT_KEEP_LAST = 4
STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://")


@lru_cache(maxsize=1)
def sweep_schema() -> dict[str, Any]:
    """The sweep config JSON Schema (draft 2020-12)."""
    return json.loads(SCHEMA_PATH.read_text())


def raise_problems(problems: list[str], source: str) -> None:
    if len(problems) == 1:
        raise SweepConfigError(f"sweep config '{source}': {problems[0]}")
    listed = "; ".join(f"({index}) {problem}" for index, problem in enumerate(problems, 1))
    raise SweepConfigError(f"sweep config '{source}' has {len(problems)} problems: {listed}")


# ---------------------------------------------------------------------------------------- schema errors


def _path_text(path: Iterable[Any]) -> str:
    parts = [str(part) if not isinstance(part, int) else f"[{part}]" for part in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _schema_at(schema: Mapping[str, Any], path: Iterable[Any]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A suggestion for a misspelt key or value: the closest spelling, else a choice it abbreviates."""
    choices = list(choices)
    matches = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not matches and len(str(word)) >= 3:
        word = str(word)
        matches = [c for c in choices if c.startswith(word) or c.endswith(word) or f"_{word}_" in c][:1]
    return f" Did you mean '{matches[0]}'?" if matches else ""


def _describe(error: jsonschema.ValidationError, schema: Mapping[str, Any]) -> list[str]:
    where = _path_text(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties":
        in_order = list(_schema_at(schema, error.absolute_path).get("properties", {}))
        allowed = sorted(in_order)
        unknown = sorted(set(value) - set(allowed)) if isinstance(value, Mapping) else []
        prefix = "" if where == "<top level>" else f"{where}."
        return [
            f"unknown key '{prefix}{key}'; allowed keys here: {', '.join(allowed)}.{did_you_mean(key, in_order)}"
            for key in unknown
        ]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = "" if where == "<top level>" else f"{where}."
        return [f"missing required key '{prefix}{missing}'."]
    if kind == "enum":
        allowed = error.validator_value
        return [
            f"'{where}' = {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}."
            f"{did_you_mean(value, map(str, allowed)) if isinstance(value, str) else ''}"
        ]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [f"'{where}' must be of type {expected}, got {value!r} ({type(value).__name__})."]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return [f"'{where}' must be {relation} {error.validator_value}, got {value!r}."]
    if kind == "pattern":
        described = _schema_at(schema, error.absolute_path).get("description", "")
        hint = f" ({described})" if described else ""
        return [f"'{where}' = {value!r} does not match the pattern {error.validator_value!r}{hint}."]
    if kind == "minLength":
        return [f"'{where}' must not be empty."]
    if kind == "uniqueItems":
        return [f"'{where}' lists the same item twice: {value!r}."]
    if kind == "oneOf":
        described = _schema_at(schema, error.absolute_path).get("description", "")
        return [f"'{where}' = {value!r} has the wrong form: {described}"]
    if kind == "propertyNames":
        return [f"'{where}' has a key that is not a dotted name: {value!r}."]
    return [f"'{where}': {error.message}."]


def schema_problems(data: Mapping[str, Any]) -> list[str]:
    schema = sweep_schema()
    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        problems.extend(_describe(error, schema))
    return problems


# -------------------------------------------------------------------------------------- semantic rules


def resolve_algorithm(algorithm: Mapping[str, Any], backend: str) -> tuple[str, str]:
    """(sampler, scheduler) for what the user wrote; assumes the semantic checks passed."""
    return algorithms.resolve(algorithm.get("name", DEFAULT_ALGORITHM), backend,
                              pruner=algorithm.get("pruner"), sampler=algorithm.get("sampler"))


def semantic_problems(data: Mapping[str, Any], base_dir: Path) -> list[str]:
    problems: list[str] = []
    algorithm = data["algorithm"]
    name = algorithm.get("name", DEFAULT_ALGORITHM)
    backend = data.get("backend", "ray")
    if name not in SCHEDULER_ALGORITHMS and "sampler" in algorithm:
        itself = ("is itself the sampler" if name in SAMPLERS
                  else f"brings its own proposals ({OWN_PROPOSALS.get(name, name)})")
        problems.append(
            f"'algorithm.sampler' only applies when algorithm.name is a scheduler ({', '.join(SCHEDULER_ALGORITHMS)}); "
            f"algorithm.name {name!r} {itself}. Remove algorithm.sampler."
        )
    if name not in SAMPLERS and "pruner" in algorithm:
        problems.append(
            f"'algorithm.pruner' only applies when algorithm.name is a sampler ({', '.join(SAMPLERS)}); "
            f"{name!r} already decides early stopping. Remove algorithm.pruner."
        )
    unsupported = algorithms.backend_problem(name, backend)
    if unsupported:
        problems.append(unsupported)
    if name == "bohb" and backend == "ray":
        try:
            import ConfigSpace  # noqa: F401
            import hpbandster  # noqa: F401
        except ImportError:
            problems.append(
                "algorithm 'bohb' on backend 'ray' needs the packages hpbandster and ConfigSpace "
                "(pip install hpbandster ConfigSpace); or use backend: optuna, which runs BOHB as TPE + Hyperband pruner."
            )
    if problems:
        return problems
    sampler, scheduler = resolve_algorithm(algorithm, backend)
    for knob, scopes in KNOB_SCOPE.items():
        if knob in algorithm:
            resolved = {"scheduler": scheduler, "sampler": sampler}
            if not any(resolved[axis] in scope for axis, scope in scopes):
                applies = " or ".join(f"{axis}s {', '.join(scope)}" for axis, scope in scopes)
                problems.append(
                    f"'algorithm.{knob}' = {algorithm[knob]!r} has no effect with algorithm {name!r} on backend "
                    f"{backend!r} (sampler {sampler!r}, early stopping {scheduler!r}); it applies to {applies}. Remove it."
                )
    for knob, schedulers in BACKEND_UNSUPPORTED.get(backend, {}).items():
        if knob in algorithm and scheduler in schedulers:
            problems.append(
                f"'algorithm.{knob}' = {algorithm[knob]!r} is not supported by {scheduler!r} on backend {backend!r}; "
                "remove it" + (" (Ray's HyperBand rungs follow from max_epochs and reduction_factor)." if knob == "grace_period" else ".")
            )
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            problems.append("sampler 'cmaes' needs the package cmaes (pip install cmaes).")
    max_epochs = algorithm.get("max_epochs")
    grace = algorithm.get("grace_period")
    if max_epochs is not None and grace is not None and grace > max_epochs:
        problems.append(f"'algorithm.grace_period' = {grace} exceeds 'algorithm.max_epochs' = {max_epochs}; a trial "
                        "cannot be given more epochs than its budget.")
    min_points = algorithm.get("min_early_stop_epochs", 4)
    if scheduler == "hyperband_es" and max_epochs is not None and min_points >= max_epochs:
        problems.append(early_stop_budget_problem(min_points, max_epochs))
    interval = algorithm.get("perturbation_interval")
    if max_epochs is not None and interval is not None and interval >= max_epochs:
        problems.append(f"'algorithm.perturbation_interval' = {interval} must be smaller than 'algorithm.max_epochs' = "
                        f"{max_epochs}, or PBT never perturbs.")
    population = algorithm.get("population_size")
    if population is not None and "max_trials" in algorithm and population != algorithm["max_trials"]:
        problems.append(
            f"'algorithm.population_size' = {population} and 'algorithm.max_trials' = {algorithm['max_trials']} disagree: "
            "a PBT population is its trial count; set only one of them."
        )
    resources = data.get("resources", {})
    gpus_per_trial = resources.get("gpus_per_trial", 0)
    if gpus_per_trial > 1 and not float(gpus_per_trial).is_integer():
        problems.append(f"'resources.gpus_per_trial' = {gpus_per_trial}: fractions are allowed only below 1 (GPU "
                        "sharing); above 1 use a whole number.")
    uneven_fraction = 0 < gpus_per_trial < 1 and not math.isclose(1 / gpus_per_trial, round(1 / gpus_per_trial),
                                                                  rel_tol=1e-6)
    if uneven_fraction and backend == "optuna":
        problems.append(f"'resources.gpus_per_trial' = {gpus_per_trial}: on backend optuna a fraction must be 1/N "
                        "(0.5, 0.25, ...) so trials pack evenly onto GPUs.")
    total_gpus = resources.get("gpus")
    if total_gpus is not None and gpus_per_trial > total_gpus:
        problems.append(f"'resources.gpus_per_trial' = {gpus_per_trial} exceeds 'resources.gpus' = {total_gpus}: no trial could ever start.")
    promotion = data.get("promotion", {})
    for knob in ("test_top_k", "champion"):
        if knob in promotion and not data.get("datasets", {}).get("test"):
            problems.append(f"'promotion.{knob}' = {promotion[knob]!r} needs a held-out test dataset: set datasets.test "
                            "(a folder or s3:// root in the same format as datasets.eval), or remove it.")
    storage = data.get("storage")
    if storage is not None:
        if backend != "optuna":
            problems.append(f"'storage' = {storage!r} applies to backend optuna only; backend ray keeps its state in the "
                            "workspace (state/ray). Remove storage or set backend: optuna.")
        elif not storage.startswith(STORAGE_SCHEMES):
            problems.append(f"'storage' = {storage!r} is not a database URL; allowed: {', '.join(s + '...' for s in STORAGE_SCHEMES)}.")
    problems += _scale_out_problems(data, backend, scheduler)
    direction = data.get("direction")
    metric = data.get("metric", "kpi")
    if direction == "maximize" and "loss" in metric.lower():
        problems.append(f"'direction' = 'maximize' with metric {metric!r}: a loss is minimised. Set direction: minimize "
                        "(or leave it out to infer it).")
    for key, must_be in (("skill_dir", "folder"), ("base_spec", "file")):
        value = data.get(key)
        if value:
            path = _absolute(value, base_dir)
            ok = path.is_dir() if must_be == "folder" else path.is_file()
            if not ok:
                problems.append(f"'{key}' = {value!r} ({path}) is not an existing {must_be}.")
    for split in ("train", "eval", "test"):
        value = data.get("datasets", {}).get(split)
        if value and "://" not in value and not _absolute(value, base_dir).is_dir():
            problems.append(f"'datasets.{split}' = {value!r} ({_absolute(value, base_dir)}) is not an existing folder.")
    return problems


def early_stop_budget_problem(min_points: int, max_epochs: int) -> str:
    """hyperband_es needs validations before the last epoch to extrapolate (shared with the run-time check)."""
    return (f"'algorithm.min_early_stop_epochs' = {min_points} leaves hyperband_es nothing to stop with an epoch budget "
            f"of {max_epochs}: a curve is extrapolated only after {min_points} validations, before the last epoch. "
            f"Lower min_early_stop_epochs (4 at the least), raise the epoch budget above {min_points}, or use hyperband.")


def _ray_storage_problems(value: str, backend: str) -> list[str]:
    """`ray.storage`: an s3:// URI the Ray nodes share (never echoed with credentials: a URI holds none)."""
    if backend != "ray":
        return [f"'ray.storage' = {value!r} applies to backend ray (the storage Ray's nodes share); remove it or set "
                "backend: ray."]
    if not value.lower().startswith("s3://"):
        return [f"'ray.storage' = {value!r} is not an s3:// URI: it is where the Ray nodes exchange checkpoints and "
                "Ray's experiment state when they share no filesystem, written s3://<bucket>/<prefix>. Leave it out "
                "when the workspace is the same path on every node."]
    from hpo.storage.uri import parse_s3_uri
    from skillkit.errors import StorageError

    try:
        parse_s3_uri(value)
    except StorageError as error:
        return [f"'ray.storage': {error}"]
    return []


def _scale_out_problems(data: Mapping[str, Any], backend: str, scheduler: str) -> list[str]:
    """`workers` (many Optuna workers on one study) and `checkpoints` (disk during the sweep)."""
    problems: list[str] = []
    workers = data.get("workers")
    if workers is not None:
        if backend != "optuna":
            problems.append("'workers' applies to backend optuna (several workers sharing one PostgreSQL study); "
                            "backend ray retries lost trials itself. Remove workers or set backend: optuna.")
        heartbeat = workers.get("heartbeat_interval_s", 20)
        grace = workers.get("grace_period_s", 120)
        if grace <= heartbeat:
            problems.append(f"'workers.grace_period_s' = {grace} must exceed 'workers.heartbeat_interval_s' = {heartbeat}: "
                            "a live worker's trial would be taken for dead between two heartbeats.")
    ray_storage = (data.get("ray") or {}).get("storage")
    if ray_storage is not None:
        problems += _ray_storage_problems(ray_storage, backend)
    checkpoints = data.get("checkpoints", {})
    keep_all_promotion = data.get("promotion", {}).get("keep_all_checkpoints")
    if checkpoints.get("retention") == "bounded" and keep_all_promotion:
        problems.append("'checkpoints.retention' = 'bounded' deletes checkpoints during the sweep, but "
                        "'promotion.keep_all_checkpoints' = true asks to keep them all; set checkpoints.retention: keep_all "
                        "(or leave it out), or drop promotion.keep_all_checkpoints.")
    if scheduler == "pbt" and checkpoints.get("keep_last") is not None and checkpoints["keep_last"] < PBT_KEEP_LAST:
        problems.append(f"'checkpoints.keep_last' = {checkpoints['keep_last']} is below {PBT_KEEP_LAST} with algorithm pbt: an "
                        f"exploiting trial may copy any of its donor's {PBT_KEEP_LAST} newest checkpoints (the ones Ray keeps).")
    return problems


def _absolute(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()

"""Every algorithm the benchmark compares, by name, and `run_algorithm` — the stable Python API.

    from benchmarks.search_efficiency import run_algorithm, get_suite
    trace = run_algorithm("ours:tpe", get_suite("mfh3_good"), seed=0, budget_epochs=2340)
    trace.regret_at(1000), trace.epochs_to(0.05)

Names:
- `ours:<name>`: each algorithm of the sweep config schema (`algorithm.name`'s enum, read from the engine at
  run time, so algorithms another branch adds appear automatically), as `hpo run` configures it from
  `{name: <name>}` with every other knob at its default, on backend optuna (the single-machine backend).
  `ours:<name>[knob=value,...]` sets sweep-config knobs of that algorithm (values read as YAML, checked by the
  sweep schema and rules like any sweep config), e.g. `ours:mfbo[random_fraction=0.33,n_startup_trials=5]`. A
  name the engine cannot build from Optuna parts on that backend (PBT needs Ray) is listed by `skipped()`
  with the engine's own reason; every other one, including names added later, is benchmarked.
- `optuna:<sampler>+<pruner>`: Optuna's samplers (random, tpe, gp, cmaes) at their library defaults with
  Optuna's pruners (sh = SuccessiveHalvingPruner, hb = HyperbandPruner, median = MedianPruner) at theirs,
  run through the same trial loop.
- `tao_<name>`: TAO AutoML's own brains (`tao.py`), hyperband/bohb/bayesian and the rest of TAO's list.
- `dehb`: the `dehb` package's ask/tell DEHB (`peers.py`).
- `ray:<name>`: Ray Tune's own ASHA, HyperBand and BOHB (HyperBandForBOHB + TuneBOHB) as a bare Ray Tune user
  configures them, driven in-process without a Ray cluster (`raytune.py`).
- `syne:<name>`: Syne Tune's own multi-fidelity baselines ASHA and BOHB at their defaults, driven in-process
  without a Tuner (`synetune.py`); ASHABORE and ASHACQR import xgboost and are listed as not simulated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from benchmarks.search_efficiency.simulator import Trace, simulate
from benchmarks.search_efficiency.suites import Suite

DEFAULT_WORKERS = 4


def engine_algorithm_names() -> tuple[str, ...]:
    """`algorithm.name` values the engine's sweep schema accepts (the engine is the source of truth)."""
    from hpo.sweep.config import sweep_schema

    return tuple(sweep_schema()["properties"]["algorithm"]["properties"]["name"]["enum"])


def _ours(name: str, knobs: Mapping[str, Any] | None = None) -> Callable[[Suite, int], Any]:
    def make(suite: Suite, seed: int) -> Any:
        from benchmarks.search_efficiency.policies import OptunaPolicy, sweep_config_for

        config = sweep_config_for({**(knobs or {}), "name": name}, suite=suite, seed=seed, backend="optuna")
        return OptunaPolicy(config, suite)

    return make


OPTUNA_SAMPLERS = ("random", "tpe", "gp", "cmaes")
OPTUNA_PRUNERS = ("sh", "hb", "median")


def _optuna(sampler: str, pruner: str) -> Callable[[Suite, int], Any]:
    def make(suite: Suite, seed: int) -> Any:
        import optuna

        from benchmarks.search_efficiency.policies import OptunaPolicy, sweep_config_for

        samplers = {"random": lambda: optuna.samplers.RandomSampler(seed=seed),
                    "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                    "gp": lambda: optuna.samplers.GPSampler(seed=seed),
                    "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)}
        pruners = {"sh": optuna.pruners.SuccessiveHalvingPruner, "hb": optuna.pruners.HyperbandPruner,
                   "median": optuna.pruners.MedianPruner}
        config = sweep_config_for({"name": "random"}, suite=suite, seed=seed, backend="optuna")
        return OptunaPolicy(config, suite, sampler=samplers[sampler](), pruner=pruners[pruner]())

    return make


def _tao(name: str) -> Callable[[Suite, int], Any]:
    def make(suite: Suite, seed: int) -> Any:
        from benchmarks.search_efficiency.tao import TaoPolicy

        return TaoPolicy(name, suite, seed=seed)

    return make


def registry() -> dict[str, Callable[[Suite, int], Any]]:
    """Algorithm name -> factory(suite, seed) of its simulator policy."""
    from benchmarks.search_efficiency.raytune import RAY_ALGORITHMS
    from benchmarks.search_efficiency.synetune import SYNE_ALGORITHMS
    from benchmarks.search_efficiency.tao import TAO_ALGORITHMS

    algorithms: dict[str, Callable[[Suite, int], Any]] = {}
    for name in engine_algorithm_names():
        if name not in skipped():
            algorithms[f"ours:{name}"] = _ours(name)
    for sampler in OPTUNA_SAMPLERS:
        for pruner in OPTUNA_PRUNERS:
            algorithms[f"optuna:{sampler}+{pruner}"] = _optuna(sampler, pruner)
    for name in TAO_ALGORITHMS:
        algorithms[f"tao_{name}"] = _tao(name)
    algorithms["dehb"] = _dehb
    for name in RAY_ALGORITHMS:
        algorithms[f"ray:{name}"] = _ray(name)
    for name in SYNE_ALGORITHMS:
        algorithms[f"syne:{name}"] = _syne(name)
    return algorithms


def _syne(name: str) -> Callable[[Suite, int], Any]:
    def make(suite: Suite, seed: int) -> Any:
        from benchmarks.search_efficiency.synetune import SyneTunePolicy

        return SyneTunePolicy(name, suite, seed=seed)

    return make


def _ray(name: str) -> Callable[[Suite, int], Any]:
    def make(suite: Suite, seed: int) -> Any:
        from benchmarks.search_efficiency.raytune import RayTunePolicy

        return RayTunePolicy(name, suite, seed=seed)

    return make


def _dehb(suite: Suite, seed: int) -> Any:
    from benchmarks.search_efficiency.peers import DehbPolicy

    return DehbPolicy(suite, seed=seed)


@lru_cache(maxsize=1)
def skipped() -> dict[str, str]:
    """Engine algorithms the simulator cannot run on backend optuna, with the reason: each name is probed by
    building its sweep config, sampler and pruner exactly as `ours:<name>` would, so a new algorithm that
    the engine builds from Optuna parts is benchmarked without any change here."""
    from benchmarks.search_efficiency.policies import compiled_space, sweep_config_for
    from benchmarks.search_efficiency.suites import hartmann_suite
    from hpo.backends.optuna_factory import make_pruner, make_sampler

    probe = hartmann_suite(3, "good")
    space = compiled_space(probe)
    out = {}
    for name in engine_algorithm_names():
        try:
            config = sweep_config_for({"name": name}, suite=probe, seed=0, backend="optuna")
            make_sampler(config.algorithm, space, 0, epoch_budget=probe.max_epochs)
            make_pruner(config.algorithm, probe.max_epochs)
        except Exception as error:  # noqa: BLE001 - the engine's own refusal is the reason to show
            out[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return out


_KNOBBED = re.compile(r"^ours:(?P<name>[a-z_]+)\[(?P<knobs>[^\[\]]*)\]$")


def split_names(text: str) -> list[str]:
    """A comma-separated list of algorithm names, where `ours:<name>[a=1,b=2]` keeps its commas."""
    return [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]


def knobbed(name: str) -> tuple[str, dict[str, Any]] | None:
    """(`ours:<name>`, knobs) of a name of the form `ours:<name>[knob=value,...]`, else None."""
    import yaml

    match = _KNOBBED.match(name)
    if not match:
        return None
    knobs: dict[str, Any] = {}
    for item in split_names(match["knobs"]):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"algorithm {name!r}: knob {item!r} is not key=value.")
        knobs[key.strip()] = yaml.safe_load(value)
    return f"ours:{match['name']}", knobs


def factory(name: str) -> Callable[[Suite, int], Any] | None:
    """The policy factory of algorithm `name` (a registry name or a knobbed `ours:` name), or None."""
    algorithms = registry()
    if name in algorithms:
        return algorithms[name]
    parsed = knobbed(name)
    if parsed and parsed[0] in algorithms:
        _check_knobs(parsed[0].removeprefix("ours:"), parsed[1])
        return _ours(parsed[0].removeprefix("ours:"), parsed[1])
    return None


@lru_cache(maxsize=64)
def cache_identity(name: str) -> str:
    """What decides the sweeps of algorithm `name`, for the benchmark's sweep cache: for an engine algorithm
    (`ours:<name>`, knobbed or not) the algorithm section `hpo run` resolves from it, so a knobbed name equal
    to the default (`ours:mfbo[surrogate=gp]` once gp is the default) shares its cached sweeps and a changed
    default never reads sweeps made under the old one; any other name stands for itself. (A change inside an
    algorithm's code is not seen: use a new cache folder.)"""
    from benchmarks.search_efficiency.policies import sweep_config_for
    from benchmarks.search_efficiency.suites import hartmann_suite

    parsed = knobbed(name) or ((name, {}) if name.startswith("ours:") else None)
    if parsed is None:
        return name
    config = sweep_config_for({**parsed[1], "name": parsed[0].removeprefix("ours:")},
                              suite=hartmann_suite(3, "good"), seed=0, backend="optuna")
    return f"ours|{config.algorithm!r}"


@lru_cache(maxsize=64)
def _check_knobs_cached(name: str, knobs: str) -> None:
    import json

    from benchmarks.search_efficiency.policies import sweep_config_for
    from benchmarks.search_efficiency.suites import hartmann_suite
    from skillkit.errors import SweepConfigError

    try:
        sweep_config_for({**json.loads(knobs), "name": name}, suite=hartmann_suite(3, "good"), seed=0)
    except SweepConfigError as error:
        raise ValueError(str(error)) from None


def _check_knobs(name: str, knobs: Mapping[str, Any]) -> None:
    """Refuse knobs the sweep schema or rules refuse (ValueError with the engine's own sentence), before a run."""
    import json

    _check_knobs_cached(name, json.dumps(dict(knobs), sort_keys=True))


def run_algorithm(name: str, suite: Suite, *, seed: int, budget_epochs: int, workers: int = DEFAULT_WORKERS,
                  record_decisions: bool = False) -> Trace:
    """One sweep of algorithm `name` on `suite` within `budget_epochs` cumulative epochs."""
    make = factory(name)
    if make is None:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(registry()))}")
    started = time.perf_counter()
    policy = make(suite, seed)
    try:
        trace = simulate(policy, suite, seed=seed, budget_epochs=budget_epochs, workers=workers, algorithm=name,
                         record_decisions=record_decisions)
    finally:
        close = getattr(policy, "close", None)
        if close:
            close()
    trace.wall_s = time.perf_counter() - started
    return trace

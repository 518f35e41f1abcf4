"""The search contract, run against every backend through the `Backend` protocol (in the style of Optuna's
`pytest_samplers` suite): the `backend` fixture is parametrised over `hpo.backends.base.BACKENDS` and builds
each backend with `backend_class(name)(ctx, observers, guard, planned=...)`, and every algorithm the registry
(`hpo.backends.algorithms`) says that backend runs gets the same checks. The sweeps run on the REAL default
space of our train schema (16 parameters, one relational: test_max_size >= test_min_size), with the fixture
trainer.

Every sweep must:
- launch only specs that validate against the schema, in which every relation holds;
- keep model-based samplers on their joint model: GP and CMA-ES log no independent-sampling warning (on in
  production), and no sampler draws a parameter independently once its startup trials are done;
- under PBT, never change a cold parameter: every launch (first start, pause/resume, exploit) runs the
  base spec's cold values, and an exploit only continues from a checkpoint with identical cold values;
- never report a stopped trial's partial score to a sampler as a final result (Optuna studies hold PRUNED
  for them, BOHB receives each partial result with its own budget);
- pick the best trial by the one rule (`hpo.trials.record.best_trial`);
- end with no failed trial.

`hpo plan` itself must exit 0 for each pair the registry supports and refuse the others (pbt on optuna)
before launch, with the registry's reason.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from hpo.backends import algorithms
from hpo.backends.base import BACKENDS, BackendFactory, backend_class
from hpo.backends.bfbo_sampler import BatchGPSampler
from hpo.backends.mfbo_sampler import SameBudgetTPESampler
from hpo.space import compile_space
from hpo.space.to_optuna import WeightedStartupSampler
from hpo.trials.record import best_trial, load_records
from skillkit.spec import get_dotted, validate_spec
from tests.engine.fixture_skill import make_real_space_skill

# Every (backend, algorithm) pair the registry supports, for every registered backend.
PAIRS = [(backend, name) for backend in BACKENDS for name, entry in algorithms.ALGORITHMS.items()
         if backend in entry.backends]
MAX_EPOCHS = 3
PLANS_AT_ONCE = 3  # `hpo plan` subprocesses run side by side (each mostly imports)
MODEL_BASED = (optuna.samplers.TPESampler, optuna.samplers.GPSampler, optuna.samplers.CmaEsSampler, SameBudgetTPESampler,
               BatchGPSampler)
PRUNED_COUNTS = (optuna.samplers.TPESampler, SameBudgetTPESampler)  # their startup counts pruned trials too


@pytest.fixture(scope="module")
def real_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_real_space_skill(tmp_path_factory.mktemp("real_space_skill"))


@pytest.fixture(scope="module")
def default_space(real_skill: Path) -> Any:
    return compile_space(json.loads((real_skill / "schemas" / "train.schema.json").read_text()))


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False, resources={"hpo_trial_slot": 2})
    yield
    ray.shutdown()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract test runs for each supported pair; `backend` is an indirect fixture over `BACKENDS`."""
    if "algorithm" in metafunc.fixturenames and "backend" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "algorithm"), PAIRS, indirect=["backend"],
                             ids=[f"{name}-{backend}" for backend, name in PAIRS])


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> tuple[str, BackendFactory]:
    """(name, class) of a registered backend, through the protocol's registry; Ray gets its session."""
    name = request.param
    if name == "ray":
        request.getfixturevalue("ray_session")
    return name, backend_class(name)


def sweep_config(skill: Path, workspace: Path, algorithm: str, backend: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"name": algorithm, "max_trials": 4, "max_epochs": MAX_EPOCHS}
    if algorithm in ("tpe", "bayesian", "mfbo", "bfbo"):
        settings["n_startup_trials"] = 2  # the trials past startup run on the joint model
    if algorithm in ("bayesian", "bfbo"):
        settings["max_trials"] = 3  # one GP proposal: each costs seconds of CPU on 16 dimensions
    if algorithm == "dehb":
        settings["max_trials"] = 6  # differential evolution needs 4 results at one budget
    if algorithm == "hyperband_es":
        settings["max_epochs"] = 5  # the curve rule needs 4 validations before the last epoch
    if algorithm == "grid":
        settings["grid_points"] = 2
    if algorithm == "pbt":
        settings.update(perturbation_interval=1, quantile_fraction=0.5)
    return {
        "name": f"{algorithm}-{backend}", "skill_dir": str(skill), "workspace": str(workspace), "backend": backend,
        "algorithm": settings, "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
        "trial": {"stop_grace_s": 5}, "tracking": {"enabled": False}, "promotion": {"enabled": False},
        "baseline": {"enabled": False}, "seed": 3,
    }


class SamplerWatch(logging.Handler):
    """Collects optuna's independent-sampling warnings and every independent draw made after startup."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings: list[str] = []
        self.late_independent: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "independent" in message.lower() or "dynamic search space" in message:
            self.warnings.append(message)


@pytest.fixture
def sampler_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[SamplerWatch]:
    watch = SamplerWatch()
    logger = logging.getLogger("optuna")
    logger.addHandler(watch)
    original = WeightedStartupSampler.sample_independent

    def spy(self, study, trial, param_name, param_distribution):  # noqa: ANN001
        base = self.base
        if isinstance(base, MODEL_BASED):
            states = (optuna.trial.TrialState.COMPLETE,) if not isinstance(base, PRUNED_COUNTS) else \
                (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            finished = len(study.get_trials(deepcopy=False, states=states))
            if finished >= max(1, int(getattr(base, "_n_startup_trials", 1))):
                watch.late_independent.append((type(base).__name__, trial.number, param_name))
        return original(self, study, trial, param_name, param_distribution)

    monkeypatch.setattr(WeightedStartupSampler, "sample_independent", spy)
    yield watch
    logger.removeHandler(watch)


@pytest.fixture
def bohb_results(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """(epochs trained by the result, budget BOHB was told) for every result fed to BOHB's model."""
    seen: list[tuple[int, float]] = []
    from hpo.backends.ray_bohb import SpaceBOHB

    original = SpaceBOHB.to_wrapper

    def spy(self, trial_id, result):  # noqa: ANN001
        seen.append((int(result["epochs_trained"]), float(result["hyperband_info"]["budget"])))
        return original(self, trial_id, result)

    monkeypatch.setattr(SpaceBOHB, "to_wrapper", spy)
    return seen


def launches(trial_dir: Path) -> list[dict[str, Any]]:
    path = trial_dir / "launches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check_partial_scores_never_final(sweep_dir: Path, study_name: str, records: list[Any], max_epochs: int) -> None:
    storage = f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}"
    study = optuna.load_study(study_name=study_name, storage=storage)
    by_id = {r.trial_id: r for r in records}
    told = 0
    for frozen in study.get_trials(deepcopy=False):
        trial_id = frozen.user_attrs.get("hpo_trial_id")
        record = by_id.get(trial_id)
        if record is None:
            continue
        if frozen.state == optuna.trial.TrialState.COMPLETE:
            told += 1
            assert record.state == "COMPLETED" and record.epochs_trained() == max_epochs, (trial_id, record.state)
            assert frozen.value == pytest.approx(record.best_value())
        if record.state == "PRUNED":
            assert frozen.state == optuna.trial.TrialState.PRUNED, trial_id
    assert told == sum(r.state == "COMPLETED" for r in records)


def run_through_the_protocol(factory: BackendFactory, ctx: Any, planned: list[dict[str, Any]]) -> dict[str, Any]:
    """What the driver does around a backend, reduced to the protocol: construct, `run()`, then summarise."""
    from hpo.driver.guard import SweepGuard
    from hpo.driver.observer import ObserverHub
    from hpo.driver.summary import write_summary

    guard = SweepGuard(max_consecutive_failures=ctx.config.trial.max_consecutive_failures,
                       time_budget_s=ctx.config.algorithm.time_budget_s)
    ctx.workspace.create()
    backend = factory(ctx, ObserverHub(), guard, planned=planned)
    backend.run()
    assert guard.reason is None, (guard.reason, guard.message)
    return write_summary(ctx, status="finished")


def test_search_contract_on_the_real_default_space(backend: tuple[str, BackendFactory], algorithm: str,
                                                   real_skill: Path, default_space: Any, tmp_path: Path,
                                                   sampler_watch: SamplerWatch, bohb_results: list) -> None:
    from hpo.driver.context import prepare_sweep
    from hpo.driver.plan import make_plan
    from hpo.driver.runner import start_workspace
    from hpo.sweep.config import load_sweep_config

    backend_name, factory = backend
    config = sweep_config(real_skill, tmp_path / "ws", algorithm, backend_name)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ctx = prepare_sweep(load_sweep_config(path))  # what `hpo run` does: plan, then run the plan's first batch first
    plan = make_plan(ctx)
    start_workspace(ctx)
    assert plan.batch_is_exact
    summary = run_through_the_protocol(factory, ctx, plan.points)
    sweep_dir = tmp_path / "ws" / config["name"]
    records = load_records(sweep_dir / "trials")

    first_runs = [{n: get_dotted(launches(sweep_dir / "trials" / r.trial_id)[0]["spec"], n) for n in ctx.space.names}
                  for r in records]
    for planned in plan.batch:  # the first batch ran exactly as `hpo plan` showed it
        assert any(all(run[n] == pytest.approx(v) for n, v in planned.items()) for run in first_runs), planned

    # no failed trial; every trial trained and reported
    assert records and all(r.state in ("COMPLETED", "PRUNED") for r in records), summary["counts"]
    assert any(r.state == "COMPLETED" for r in records)

    space_used = yaml.safe_load((sweep_dir / "space.yaml").read_text())
    searched = [p["name"] for p in space_used["parameters"]]
    cold = [p.name for p in default_space.parameters if not p.hot]
    base = {name: get_dotted(yaml.safe_load((real_skill / "references" / "spec_template_train.yaml").read_text()),
                             name) for name in cold}
    for record in records:
        runs = launches(sweep_dir / "trials" / record.trial_id)
        assert runs, record.trial_id
        for run in runs:
            spec = run["spec"]
            validate_spec(spec, "train", real_skill, source=f"{record.trial_id} launch")
            low = get_dotted(spec, "dataset.augmentation.test_min_size")
            high = get_dotted(spec, "dataset.augmentation.test_max_size")
            assert high >= low, (record.trial_id, low, high)
        assert default_space.violations({**{n: get_dotted(runs[0]["spec"], n) for n in default_space.names}}) == []
        if algorithm == "pbt":
            for run in runs:  # cold values never move, and a continued checkpoint has the same ones
                assert {n: get_dotted(run["spec"], n) for n in cold} == base, record.trial_id
                if run["resumed_spec"] is not None:
                    assert {n: get_dotted(run["resumed_spec"], n) for n in cold} == base
            for step in record.lineage:
                assert set(step["params"]) <= {p.name for p in default_space.parameters if p.hot}
    if algorithm == "pbt":
        assert set(searched) == {p.name for p in default_space.parameters if p.hot}
    else:
        assert set(searched) == set(default_space.names)  # every default parameter searched

    # Differential evolution proposed on the static space, after the random start. Optuna only: Ray's synchronous
    # HyperBand creates this 6-trial sweep's trials before DE has 4 results of one budget to evolve from.
    if algorithm == "dehb" and backend_name == "optuna":
        study = optuna.load_study(study_name=config["name"], storage=f"sqlite:///{sweep_dir / 'state' / 'optuna.db'}")
        assert any("hpo_proposal" in t.system_attrs for t in study.trials)

    # model-based samplers stay on their joint model
    assert sampler_watch.warnings == []
    assert sampler_watch.late_independent == []

    # a stopped trial's partial score is never a final result for a sampler
    if ctx.config.algorithm.sampler == "bohb":  # BOHB's own model (Ray); Optuna runs bohb as TPE + Hyperband
        assert bohb_results, "BOHB received no result"
        for epoch, budget in bohb_results:
            assert abs(budget - epoch) < 1 and (epoch == ctx.max_epochs or budget < ctx.max_epochs), (epoch, budget)
    elif algorithm != "pbt":
        check_partial_scores_never_final(sweep_dir, config["name"], records, ctx.max_epochs)

    # the best trial follows the one rule
    best = best_trial(records, summary["direction"])
    assert summary["best"]["trial_id"] == best.trial_id and summary["best"]["metric"] == best.best["metric"]


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_hpo_plan_accepts_every_supported_algorithm_on_the_default_space(backend_name: str, real_skill: Path,
                                                                         tmp_path: Path) -> None:
    """The CLI itself, as a user runs it: exit 0 for each pair the registry supports, a refusal before launch
    (with the registry's reason) for the others. A few plans run at a time: each is a fresh interpreter."""
    hpo = [str(Path(sys.executable).parent / "hpo")]

    def plan_of(algorithm: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{algorithm}.yaml"
        path.write_text(yaml.safe_dump(sweep_config(real_skill, tmp_path / "ws", algorithm, backend_name)))
        return subprocess.run([*hpo, "plan", str(path), "--json"], capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=PLANS_AT_ONCE) as pool:
        done_by_algorithm = dict(zip(algorithms.ALGORITHMS, pool.map(plan_of, algorithms.ALGORITHMS)))
    for algorithm, done in done_by_algorithm.items():
        refusal = algorithms.backend_problem(algorithm, backend_name)
        if refusal is not None:
            assert done.returncode != 0 and refusal in done.stderr + done.stdout, (algorithm, done.stderr[-2000:])
            assert "Traceback" not in done.stderr
            continue
        assert done.returncode == 0, (algorithm, done.stderr[-2000:])
        plan = json.loads(done.stdout)
        assert len(plan["parameters"]) + len(plan["held_parameters"]) == 16, algorithm
        assert plan["hot_parameters"] and all(row["pbt"] in ("hot", "cold") for row in plan["parameters"])
        if algorithm == "pbt":
            assert {h["name"] for h in plan["held_parameters"]} == {
                "dataset.augmentation.test_min_size", "dataset.augmentation.test_max_size",
                "dataset.augmentation.train_max_size", "model.mask_former.dec_layers",
                "model.mask_former.hidden_dim", "model.mask_former.num_object_queries"}
            assert all("cold" in h["reason"] for h in plan["held_parameters"])
        else:
            assert plan["held_parameters"] == []

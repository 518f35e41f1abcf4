"""Cross-check: the same sweep (algorithm, suite, seed) through the real subprocess path and through the
simulator must make the same decisions — the same configurations, in the same order, each trained to the
same epoch and ending the same way (completed or pruned).

The real path is `hpo run` itself (`hpo.driver.runner.run_sweep`, backend optuna, one trial at a time so the
order is deterministic) on a skill dir whose train command is `replay_trainer.py`, which replays the suite's
curve under the status.json contract; the simulator runs `OptunaPolicy` with the SweepConfig loaded from the
same sweep config. Only deterministic curves (Hartmann) are used, so both see identical values.

    python -m benchmarks.search_efficiency.crosscheck --algorithm bohb --suite mfh3_good@9 --trials 8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.search_efficiency.env import ROOT, use_benchmark_env


@dataclass(frozen=True)
class TrialDecision:
    number: int
    params: dict[str, float]
    last_epoch: int  # epochs trained when the trial stopped (a count, as the simulator's clock counts)
    completed: bool


def make_replay_skill(folder: Path, suite: Any) -> Path:
    (folder / "references").mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    schema = suite.schema()
    info = {
        "name": "replay-skill", "network_arch": "benchmark", "automl_enabled": True, "monitoring_metric": suite.metric,
        "actions": {"train": {"command": f"{sys.executable} -m benchmarks.search_efficiency.replay_trainer train -e {{config_path}}",
                              "config_format": "yaml", "mode": "config"}},
        "data_sources": {},
        "spec_params": {"train": {"results_dir": "output_dir", "train.pretrained_model_path": "ptm_if_no_resume_model",
                                  "train.resume_training_checkpoint_path": "resume_model"}},
        "spec_shorthand_keys": {"num_epochs": "train.num_epochs"},
    }
    (folder / "references" / "skill_info.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    (folder / "references" / "spec_template_train.yaml").write_text(yaml.safe_dump(schema["default"], sort_keys=False))
    (folder / "schemas" / "train.schema.json").write_text(json.dumps(schema, indent=1))
    return folder


def sweep_dict(*, skill: Path, workspace: Path, suite: Any, algorithm: dict, trials: int, seed: int) -> dict:
    return {
        "name": "crosscheck", "skill_dir": str(skill), "workspace": str(workspace), "backend": "optuna", "seed": seed,
        "algorithm": {"max_trials": trials, "max_epochs": suite.max_epochs, **algorithm},
        "metric": suite.metric, "direction": suite.direction,
        "resources": {"max_concurrent": 1, "cpus_per_trial": 1},
        "trial": {"env": {"REPLAY_SUITE": suite.name, "PYTHONPATH": str(ROOT)}, "timeout_s": 600, "stop_grace_s": 30},
        "baseline": {"enabled": False}, "tracking": {"enabled": False}, "promotion": {"enabled": False},
    }


def real_decisions(data: dict, base_dir: Path) -> list[TrialDecision]:
    from hpo.driver.runner import run_sweep
    from hpo.sweep.config import sweep_config_from_dict
    from hpo.trials.record import COMPLETED, load_records

    config = sweep_config_from_dict(data, base_dir=base_dir)
    run_sweep(config, use_default_observers=False)
    records = sorted(load_records(config.sweep_dir / "trials"), key=lambda r: r.number)
    return [TrialDecision(r.number, {k: float(v) for k, v in r.params.items()}, r.epochs_trained(),
                          r.state == COMPLETED) for r in records]


def simulated_decisions(data: dict, base_dir: Path, suite: Any) -> list[TrialDecision]:
    from benchmarks.search_efficiency.policies import OptunaPolicy
    from benchmarks.search_efficiency.simulator import COMPLETED, simulate
    from hpo.sweep.config import sweep_config_from_dict

    config = sweep_config_from_dict(data, base_dir=base_dir)
    trace = simulate(OptunaPolicy(config, suite), suite, seed=config.seed, budget_epochs=10**9, workers=1,
                     record_decisions=True)
    return [TrialDecision(int(d.key), {k: float(v) for k, v in d.config.items()}, d.end_epoch,
                          d.reason == COMPLETED and d.end_epoch == suite.max_epochs)
            for d in sorted(trace.decisions, key=lambda d: d.key)]


def compare(real: list[TrialDecision], simulated: list[TrialDecision]) -> list[str]:
    problems = []
    if len(real) != len(simulated):
        problems.append(f"{len(real)} real trials vs {len(simulated)} simulated")
    for a, b in zip(real, simulated):
        same_params = a.params.keys() == b.params.keys() and all(
            math.isclose(a.params[k], b.params[k], rel_tol=1e-9, abs_tol=1e-12) for k in a.params)
        if a.number != b.number or not same_params or a.last_epoch != b.last_epoch or a.completed != b.completed:
            problems.append(f"trial {a.number}: real {a} vs simulated {b}")
    return problems


def crosscheck(*, algorithm: dict, suite_name: str, trials: int, seed: int, workdir: Path) -> dict[str, Any]:
    use_benchmark_env()
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(suite_name)
    skill = make_replay_skill(workdir / "skill", suite)
    data = sweep_dict(skill=skill, workspace=workdir / "workspace", suite=suite, algorithm=algorithm, trials=trials,
                      seed=seed)
    simulated = simulated_decisions(data, workdir, suite)
    real = real_decisions(data, workdir)
    problems = compare(real, simulated)
    return {"algorithm": algorithm, "suite": suite_name, "seed": seed, "trials": len(real),
            "decisions": [{"number": d.number, "last_epoch": d.last_epoch, "completed": d.completed} for d in real],
            "identical": not problems, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithm", default="bohb", help="sweep config algorithm.name (backend optuna)")
    parser.add_argument("--pruner", help="algorithm.pruner, for a sampler algorithm")
    parser.add_argument("--suite", default="mfh3_good@9")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args(argv)
    algorithm = {"name": args.algorithm, **({"pruner": args.pruner} if args.pruner else {})}
    with tempfile.TemporaryDirectory(prefix="crosscheck-") as tmp:
        result = crosscheck(algorithm=algorithm, suite_name=args.suite, trials=args.trials, seed=args.seed, workdir=Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Cross-check of `raytune.py`'s controller stand-in against Ray Tune itself: the same sweep (algorithm, suite,
seed, number of trials) through `tune.Tuner` on a local one-CPU Ray instance and through the simulator with one
worker must give every trial the same configuration, train it the same number of epochs and use the same total
of epochs.

The real side is what a bare Ray Tune user runs: `Tuner(trainable, param_space=param_space(suite),
tune_config=TuneConfig(metric, mode, scheduler=<Ray's class at its defaults, max_t=R>, search_alg=
BasicVariantGenerator(random_state=seed) or TuneBOHB(seed=seed), num_samples=trials))`. The trainable
replays the suite's Hartmann curve (deterministic, so both sides see identical values) one epoch per
`tune.report`, with a checkpoint each epoch so a paused trial resumes where it stopped. One CPU means one trial
at a time, so the order of results is Ray's own and reproducible.

    python -m benchmarks.search_efficiency.ray_crosscheck --algorithm hyperband --suite mfh3_good@9 --trials 17
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.search_efficiency.env import BENCH_SITE, ROOT, use_benchmark_env
from benchmarks.search_efficiency.peer_crosscheck import compare
from benchmarks.search_efficiency.peer_crosscheck import main as peer_main


def _trainable(config: dict[str, Any]) -> None:
    """Ray's side: replay the suite's curve, one report (and checkpoint) per epoch."""
    from ray import tune

    use_benchmark_env()
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(os.environ["RAY_CROSSCHECK_SUITE"])
    curve = suite.curve(config, None)  # type: ignore[arg-type]  # Hartmann curves draw no noise
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = json.loads((Path(folder) / "state.json").read_text())["epoch"]
    for epoch in range(start + 1, suite.max_epochs + 1):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
            tune.report({suite.metric: curve.value(epoch), "epoch": epoch},
                        checkpoint=tune.Checkpoint.from_directory(folder))


def simulated(algorithm: str, suite_name: str, seed: int, trials: int) -> list[dict[str, Any]]:
    from benchmarks.search_efficiency.raytune import RayTunePolicy
    from benchmarks.search_efficiency.simulator import simulate
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(suite_name)
    policy = RayTunePolicy(algorithm, suite, seed=seed, max_trials=trials)
    simulate(policy, suite, seed=seed, budget_epochs=10**9, workers=1, algorithm=f"ray:{algorithm}")
    return [{"trial": int(t.trial_id), "config": t.config, "epochs": t.epochs} for t in policy.controller.trials]


def real(algorithm: str, suite_name: str, seed: int, trials: int, workdir: Path) -> list[dict[str, Any]]:
    import numpy as np
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, HyperBandScheduler
    from ray.tune.search import BasicVariantGenerator

    from benchmarks.search_efficiency.raytune import TIME_ATTR, param_space
    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(suite_name)
    os.environ["RAY_CROSSCHECK_SUITE"] = suite_name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH_SITE), os.environ.get("PYTHONPATH", "")])
    np.random.seed(seed)  # as the simulator's policy: ASHA's bracket draw, hpbandster's sampling
    schedulers = {"asha": ASHAScheduler, "hyperband": HyperBandScheduler, "bohb": HyperBandForBOHB}
    scheduler = schedulers[algorithm](time_attr=TIME_ATTR, max_t=suite.max_epochs)
    if algorithm == "bohb":
        from ray.tune.search.bohb import TuneBOHB

        search_alg: Any = TuneBOHB(seed=seed)
    else:
        search_alg = BasicVariantGenerator(random_state=seed)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    try:
        tuner = tune.Tuner(
            _trainable, param_space=param_space(suite),
            tune_config=tune.TuneConfig(metric=suite.metric, mode="min" if suite.direction == "minimize" else "max",
                                        scheduler=scheduler, search_alg=search_alg, num_samples=trials),
            run_config=tune.RunConfig(name="crosscheck", storage_path=str(workdir), verbose=0))
        grid = tuner.fit()
    finally:
        ray.shutdown()
    # The experiment tag starts with the trial's creation counter ("<n>_x0=...") for both of Ray's searchers.
    created = sorted(grid, key=lambda result: int(str(result.metrics["experiment_tag"]).split("_")[0]))
    return [{"trial": index, "config": dict(result.config), "epochs": int(result.metrics[TIME_ATTR])}
            for index, result in enumerate(created)]


def crosscheck(algorithm: str, suite_name: str, seed: int, trials: int, workdir: Path) -> dict[str, Any]:
    sim = simulated(algorithm, suite_name, seed, trials)
    ray_side = real(algorithm, suite_name, seed, trials, workdir)
    return compare("Ray", "ray", algorithm, suite_name, seed, trials, sim, ray_side)


def main(argv: list[str] | None = None) -> int:
    return peer_main(argv, prog="python -m benchmarks.search_efficiency.ray_crosscheck", description=__doc__,
                     algorithms=("asha", "hyperband", "bohb"), default_algorithm="hyperband", default_trials=17,
                     crosscheck=crosscheck)


if __name__ == "__main__":
    sys.exit(main())

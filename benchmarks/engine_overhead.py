"""Engine overhead: what the HPO engine costs per trial, against bare Optuna and bare Ray Tune doing the same work.

Every contender runs the same N trials of the fixture trainer (`tests/engine/fixture_trainer.py`, the
engine–trainer contract in miniature: a subprocess that reads a spec, "trains" E epochs of S seconds, writes
status.json and checkpoints) with the same concurrency C and random sampling:

- floor:       the trainer subprocess run directly, one after another (no HPO at all);
- bare-optuna: `study.optimize(n_jobs=C)`, the objective runs the trainer and reads its final mIoU;
- bare-ray:    a Ray Tune function trainable that runs the trainer and reports its final mIoU;
- ours-optuna: `hpo` with backend optuna (per-epoch following, reporting, trial.json, summary.json);
- ours-ray:    `hpo` with backend ray (HpoTrainable actors, checkpoints, driver-side records).

Per-trial overhead = wall × C / N − floor (the mean direct trainer time); trials/minute = N / wall × 60.

    python benchmarks/engine_overhead.py                # 16 trials, 3 epochs of 0.1 s, concurrency 2
    python benchmarks/engine_overhead.py --quick        # 4 trials, for CI
    python benchmarks/engine_overhead.py --contenders floor,bare-optuna,ours-optuna --out out.json
    python benchmarks/engine_overhead.py --at-scale --address HEAD_IP:6379 --contenders bare-ray,ours-ray
                                                        # 200 trials, 8 at once, on a Ray cluster

Prints a rich table and writes JSON (default benchmarks/results/engine_overhead.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

from fixture_skill import FIXTURE_TRAINER, TRAIN_TEMPLATE, make_fixture_skill  # noqa: E402

CONTENDERS = ("floor", "bare-optuna", "bare-ray", "ours-optuna", "ours-ray")
LR_RANGE = (1e-5, 0.1)


def write_spec(folder: Path, lr: float, epochs: int, sleep_s: float) -> Path:
    spec = json.loads(json.dumps(TRAIN_TEMPLATE))
    spec["results_dir"] = str(folder)
    spec["train"]["num_epochs"] = epochs
    spec["train"]["optim"]["lr"] = lr
    spec["fixture"]["sleep_s"] = sleep_s
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_trainer(folder: Path, lr: float, epochs: int, sleep_s: float) -> float:
    """One trial the bare way: run the trainer, read the last mIoU from its status.json."""
    spec = write_spec(folder, lr, epochs, sleep_s)
    subprocess.run([sys.executable, str(FIXTURE_TRAINER), "train", "-e", str(spec)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = [json.loads(line) for line in (folder / "status.json").read_text().splitlines()]
    return [line for line in lines if "mIoU" in (line.get("kpi") or {})][-1]["kpi"]["mIoU"]


def floor(work: Path, n: int, epochs: int, sleep_s: float, concurrency: int) -> dict[str, Any]:
    started = time.perf_counter()
    for i in range(n):
        run_trainer(work / f"t{i}", 10 ** -(1 + 3 * i / max(1, n - 1)), epochs, sleep_s)
    return {"wall_s": time.perf_counter() - started, "concurrency": 1}


def bare_optuna(work: Path, n: int, epochs: int, sleep_s: float, concurrency: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                storage=f"sqlite:///{work / 'optuna.db'}")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *LR_RANGE, log=True)
        return run_trainer(work / f"t{trial.number}", lr, epochs, sleep_s)

    started = time.perf_counter()
    study.optimize(objective, n_trials=n, n_jobs=concurrency)
    return {"wall_s": time.perf_counter() - started, "concurrency": concurrency}


def bare_ray(work: Path, n: int, epochs: int, sleep_s: float, concurrency: int) -> dict[str, Any]:
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        folder = Path(config["work"]) / tune.get_context().get_trial_id()
        tune.report({"mIoU": run_trainer(folder, config["lr"], epochs, sleep_s)})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.loguniform(*LR_RANGE), "work": str(work)},
        tune_config=tune.TuneConfig(metric="mIoU", mode="max", num_samples=n, max_concurrent_trials=concurrency,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(work / "ray"), name="bare", verbose=0),
    )
    started = time.perf_counter()
    tuner.fit()
    return {"wall_s": time.perf_counter() - started, "concurrency": concurrency}


def ours(backend: str) -> Callable[..., dict[str, Any]]:
    def run(work: Path, n: int, epochs: int, sleep_s: float, concurrency: int) -> dict[str, Any]:
        from hpo.driver.runner import run_sweep

        skill = make_fixture_skill(work / "skill")
        config = {
            "name": f"bench-{backend}", "skill_dir": str(skill), "workspace": str(work / "ws"), "backend": backend,
            "algorithm": {"name": "random", "max_trials": n, "max_epochs": epochs},
            "resources": {"cpus_per_trial": 1, "max_concurrent": concurrency},
            "search_space": {"parameters": ["train.optim.lr"]},
            "spec_overrides": {"fixture.sleep_s": sleep_s}, "tracking": {"enabled": False},
            "promotion": {"enabled": False}, "seed": 0,
        }
        path = work / "sweep.yaml"
        path.write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        summary = run_sweep(path, use_default_observers=False)
        wall = time.perf_counter() - started
        assert summary["counts"] == {"COMPLETED": n}, summary["counts"]
        return {"wall_s": wall, "concurrency": concurrency}

    return run


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "floor": floor, "bare-optuna": bare_optuna, "bare-ray": bare_ray, "ours-optuna": ours("optuna"), "ours-ray": ours("ray"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-seconds", type=float, default=0.1, help="fixture trainer seconds per epoch")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 epochs (CI)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated subset of {CONTENDERS}")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "engine_overhead.json"))
    parser.add_argument("--address", default=None,
                        help="run the Ray contenders on this existing Ray cluster (HOST:PORT; see "
                             "docs/running-on-a-cluster.md) instead of a local Ray")
    parser.add_argument("--at-scale", action="store_true",
                        help="200 trials, concurrency 8 (with --address: the issue's cluster comparison)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.epoch_seconds = 4, 2, 0.05
    if args.at_scale:
        args.trials, args.concurrency = 200, 8
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    if "floor" not in contenders:
        contenders.insert(0, "floor")

    ray_started = False
    if any(c.endswith("ray") for c in contenders):
        import ray

        if not ray.is_initialized() and args.address:
            # A cluster's nodes: trials of both Ray contenders are placed across them by Ray.
            ray.init(address=args.address, log_to_driver=False, configure_logging=False)
            ray_started = True
        elif not ray.is_initialized():
            ray.init(num_cpus=max(2, args.concurrency), include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, configure_logging=False)
            ray_started = True
        # Start Ray's worker processes before any timing, so neither Ray contender pays for the warm-up.
        warm = ray.remote(lambda: os.getpid())
        ray.get([warm.remote() for _ in range(max(2, args.concurrency))])
        cluster = {"address": args.address or "local", "nodes": sum(1 for n in ray.nodes() if n["Alive"]),
                   "cpus": ray.cluster_resources().get("CPU", 0.0)}
    else:
        cluster = None
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="engine_overhead_") as tmp:
            for name in contenders:
                work = Path(tmp) / name
                work.mkdir()
                results[name] = RUNNERS[name](work, args.trials, args.epochs, args.epoch_seconds, args.concurrency)
    finally:
        if ray_started:
            import ray

            ray.shutdown()

    per_trial_floor = results["floor"]["wall_s"] / args.trials
    rows = []
    for name in contenders:
        result = results[name]
        effective = result["wall_s"] * result["concurrency"] / args.trials
        rows.append({
            "contender": name, "wall_s": round(result["wall_s"], 3), "concurrency": result["concurrency"],
            "trials_per_minute": round(args.trials / result["wall_s"] * 60, 2),
            "seconds_per_trial_slot": round(effective, 3),
            "overhead_per_trial_s": None if name == "floor" else round(effective - per_trial_floor, 3),
        })
    walls = {row["contender"]: row["wall_s"] for row in rows}
    ratios = {f"{ours}/{bare}": round(walls[ours] / walls[bare], 3)
              for ours, bare in (("ours-optuna", "bare-optuna"), ("ours-ray", "bare-ray")) if ours in walls and bare in walls}
    report = {
        "benchmark": "engine_overhead", "trials": args.trials, "epochs": args.epochs, "ray_cluster": cluster,
        "wall_ratio_to_bare": ratios,
        "epoch_seconds": args.epoch_seconds, "concurrency": args.concurrency,
        "trainer_floor_s_per_trial": round(per_trial_floor, 3), "rows": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": list(os.getloadavg())},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Engine overhead: {args.trials} trials x {args.epochs} epochs of {args.epoch_seconds}s, "
                        f"concurrency {args.concurrency} (trainer alone: {per_trial_floor:.2f}s/trial)")
    for column in ("contender", "wall s", "trials/min", "s per trial slot", "overhead/trial s"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for row in rows:
        overhead = row["overhead_per_trial_s"]
        table.add_row(row["contender"], f"{row['wall_s']:.2f}", f"{row['trials_per_minute']:.1f}",
                      f"{row['seconds_per_trial_slot']:.2f}", "-" if overhead is None else f"{overhead:+.2f}")
    Console().print(table)
    if cluster is not None:
        print(f"Ray: {cluster['address']}, {cluster['nodes']} node(s), {cluster['cpus']:g} CPUs")
    for pair, ratio in ratios.items():
        print(f"wall-time ratio {pair}: {ratio:.2f}")
    print(f"wrote {out}")
    return 0 if all(math.isfinite(r["wall_s"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

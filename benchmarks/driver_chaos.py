"""Driver chaos: kill the sweep driver at random points, resume it, and check that the faults changed nothing.

A fixture sweep (tests/engine/fixture_trainer.py; ASHA over TPE, one trial at a time, fixed seed) runs once
without faults (the reference). The same sweep then runs in a second workspace whose driver is killed
(SIGKILL or SIGTERM, drawn at random) after a random delay, again and again, each time continued with
`hpo resume`, until the kill points are used up and a last resume finishes it. Checked:

- after every kill and every resume: no epoch of any trial trained twice (each trial's `epochs_run.txt`);
- at the end: no trial lost (exactly `max_trials` trials, none FAILED), every validation a trainer wrote is
  in its trial's record, and the same trials (ids, params), states and champion as the reference;
- every pruning decision is the one the scheduler's rule gives for the reports the sweep holds: the trials'
  reports are fed, in trial order, into a fresh copy of the sweep's pruner (Optuna backend) or of its Ray
  scheduler (Ray backend) and each trial must be PRUNED exactly where the rule prunes it, COMPLETED otherwise.

    python benchmarks/driver_chaos.py                      # 20 kill points per backend, both backends, one core busy
    python benchmarks/driver_chaos.py --quick              # CI form: 5 kill points, Optuna backend
    python benchmarks/driver_chaos.py --backends optuna --kills 8 --out out.json

Prints a table and writes JSON (default benchmarks/results/driver_chaos.json). Exit 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

from fixture_skill import make_fixture_skill  # noqa: E402

HPO = [sys.executable, "-m", "hpo.cli"]
BACKENDS = ("optuna", "ray")
# Longest random wait before a kill, per backend: about the span of a driver run between kills (a Ray
# driver spends several seconds starting Ray before its first trial).
MAX_DELAY_S = {"optuna": 4.0, "ray": 14.0}


@dataclass
class Sweep:
    """One fixture sweep: its config file and its folder."""

    config: Path
    folder: Path


@dataclass
class ChaosResult:
    backend: str
    kills: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reference_s: float = 0.0
    chaos_s: float = 0.0
    trials: int = 0
    lost: int = 0
    epochs_twice: int = 0
    same_as_reference: bool = False
    decisions_checked: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "kill_points": len(self.kills),
            "sigkill": sum(k["signal"] == "SIGKILL" for k in self.kills),
            "sigterm": sum(k["signal"] == "SIGTERM" for k in self.kills),
            "trials": self.trials, "trials_lost": self.lost, "epochs_trained_twice": self.epochs_twice,
            "same_as_uninterrupted": self.same_as_reference, "pruning_decisions_checked": self.decisions_checked,
            "states": self.states,
            "reference_s": round(self.reference_s, 1), "chaos_s": round(self.chaos_s, 1),
            "problems": self.problems,
        }


def sweep_config(skill: Path, workspace: Path, backend: str, *, trials: int, epochs: int, epoch_s: float,
                 seed: int) -> dict[str, Any]:
    return {
        "name": "chaos", "skill_dir": str(skill), "workspace": str(workspace), "backend": backend,
        "algorithm": {"name": "asha", "sampler": "tpe", "max_trials": trials, "max_epochs": epochs,
                      "grace_period": 1, "reduction_factor": 2, "n_startup_trials": 2},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1},
        "spec_overrides": {"fixture.sleep_s": epoch_s},
        "trial": {"stop_grace_s": 10},
        "tracking": {"enabled": False}, "promotion": {"enabled": False}, "seed": seed,
    }


def write_sweep(root: Path, skill: Path, backend: str, **settings: Any) -> Sweep:
    root.mkdir(parents=True, exist_ok=True)
    config = sweep_config(skill, root / "ws", backend, **settings)
    path = root / "chaos.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Sweep(config=path, folder=root / "ws" / "chaos")


def driver_env() -> dict[str, str]:
    # Each driver starts (and ends) its own single-node Ray on loopback; no cluster from the environment.
    return {**os.environ, "CI": "1", "RAY_ADDRESS": "", "RAY_NODE_IP_ADDRESS": "127.0.0.1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def start_driver(sweep: Sweep, *, resume: bool) -> subprocess.Popen:
    argv = [*HPO, "resume", str(sweep.folder)] if resume else [*HPO, "run", str(sweep.config)]
    return subprocess.Popen([*argv, "--no-live"], env=driver_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)


def finish(process: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        return -9, f"driver did not end within {timeout_s:.0f} s\n{err}"
    return process.returncode, err


def epochs_run(folder: Path) -> dict[str, list[str]]:
    return {path.parent.name: path.read_text().split() for path in (folder / "trials").glob("*/epochs_run.txt")}


def repeated_epochs(folder: Path) -> dict[str, list[str]]:
    return {trial: epochs for trial, epochs in epochs_run(folder).items() if len(epochs) != len(set(epochs))}


def written_validations(trial_dir: Path, metric: str) -> dict[int, float]:
    from skillkit.status.follower import read_validations

    return {v.epoch: v.value for v in read_validations(trial_dir / "status.json", metric)}


def outcome(folder: Path) -> dict[str, Any]:
    """What the sweep decided: per trial (in trial order) its params and state, and the champion."""
    summary = json.loads((folder / "summary.json").read_text())
    trials = sorted(summary["trials"], key=lambda t: t["number"])
    best = summary.get("best") or {}
    return {
        "status": summary["status"],
        "trials": [{"params": t["params"], "state": t["state"]} for t in trials],
        "champion": {"number": next((t["number"] for t in trials if t["trial_id"] == best.get("trial_id")), None),
                     "value": best.get("metric"), "epoch": best.get("epoch")},
    }


def pruning_rule_states(folder: Path, metric: str) -> tuple[list[str], list[str]]:
    """(states the sweep holds, states the ASHA rule gives): each trial's reports, oldest first, fed into a fresh
    copy of the sweep's pruner in trial order (one trial at a time, as the sweep ran)."""
    import optuna

    from hpo.backends.optuna_factory import make_pruner
    from hpo.sweep.config import load_sweep_config
    from skillkit.checkpoints import epochs_trained

    config = load_sweep_config(folder / "sweep.yaml")
    max_epochs = config.algorithm.max_epochs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config.algorithm, max_epochs))
    summary = json.loads((folder / "summary.json").read_text())
    held, rule = [], []
    for trial in sorted(summary["trials"], key=lambda t: t["number"]):
        held.append(trial["state"])
        fresh = study.ask()
        if not trial["history"]:
            # No validation to decide on (a trial that never reported): the rule gives no state; reported as a
            # difference by the caller rather than a crash of the checker.
            study.tell(fresh, state=optuna.trial.TrialState.FAIL)
            rule.append(f"no validation ({trial['trial_id']})")
            continue
        state = "COMPLETED"
        for entry in sorted(trial["history"], key=lambda e: e["epoch"]):
            step = epochs_trained(entry["epoch"])
            fresh.report(entry["kpi"][metric], step)
            if step < max_epochs and fresh.should_prune():
                state = "PRUNED"
                break
        if state == "PRUNED":
            study.tell(fresh, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(fresh, max(e["kpi"][metric] for e in trial["history"]))
        rule.append(state)
    return held, rule


def ray_rule_states(folder: Path, metric: str) -> tuple[list[str], list[str]]:
    """(states the sweep holds, states Ray's ASHA gives): a fresh copy of the sweep's Ray scheduler (built by the
    engine's own factory from sweep.yaml) is fed each trial's reports, oldest first, in trial order (one trial
    at a time, as the sweep ran), as Ray's controller feeds it: `on_trial_add`, `on_trial_result` per report
    (STOP below the epoch budget = PRUNED), `on_trial_complete` with the last report."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from hpo.backends.algorithms import ray_scheduler
    from hpo.sweep.config import load_sweep_config
    from skillkit.checkpoints import epochs_trained

    config = load_sweep_config(folder / "sweep.yaml")
    max_epochs = config.algorithm.max_epochs
    scheduler = ray_scheduler(config.algorithm, max_epochs=max_epochs, space=None,  # type: ignore[arg-type]
                              seed=config.seed)  # the ASHA rule draws nothing from the space
    scheduler.set_search_properties(metric, "max")
    summary = json.loads((folder / "summary.json").read_text())
    held, rule = [], []
    for trial in sorted(summary["trials"], key=lambda t: t["number"]):
        held.append(trial["state"])
        if not trial["history"]:
            rule.append(f"no validation ({trial['trial_id']})")
            continue
        fake = SimpleNamespace(trial_id=trial["trial_id"])
        scheduler.on_trial_add(None, fake)
        state, result = "COMPLETED", {}
        for entry in sorted(trial["history"], key=lambda e: e["epoch"]):
            result = {"epochs_trained": epochs_trained(entry["epoch"]), metric: entry["kpi"][metric]}
            if scheduler.on_trial_result(None, fake, result) == TrialScheduler.STOP:
                state = "PRUNED" if result["epochs_trained"] < max_epochs else "COMPLETED"
                break
        scheduler.on_trial_complete(None, fake, result)
        rule.append(state)
    return held, rule


def check_final(result: ChaosResult, sweep: Sweep, reference: dict[str, Any], trials: int) -> None:
    summary = json.loads((sweep.folder / "summary.json").read_text())
    result.trials = len(summary["trials"])
    result.states = dict(summary["counts"])
    failed = [t["trial_id"] for t in summary["trials"] if t["state"] == "FAILED"]
    result.lost = len(failed) + max(0, trials - result.trials)
    if summary["status"] != "finished":
        result.problems.append(f"the resumed sweep ended {summary['status']}, not finished")
    if failed:
        result.problems.append(f"trials failed (lost): {failed}")
    result.epochs_twice = sum(len(e) - len(set(e)) for e in epochs_run(sweep.folder).values())
    for trial in summary["trials"]:
        written = written_validations(sweep.folder / "trials" / trial["trial_id"], summary.get("metric", "mIoU"))
        recorded = {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]}
        if recorded != written:
            result.problems.append(f"{trial['trial_id']}: record {recorded} differs from status.json {written}")
    got = outcome(sweep.folder)
    result.same_as_reference = got["trials"] == reference["trials"] and got["champion"] == reference["champion"]
    if not result.same_as_reference:
        for number, (a, b) in enumerate(zip(reference["trials"], got["trials"])):
            if a != b:
                result.problems.append(f"trial {number}: uninterrupted {a} vs resumed {b}")
        if len(reference["trials"]) != len(got["trials"]):
            result.problems.append(f"{len(reference['trials'])} trials uninterrupted vs {len(got['trials'])} resumed")
        if got["champion"] != reference["champion"]:
            result.problems.append(f"champion {reference['champion']} uninterrupted vs {got['champion']} resumed")
    held, rule = (pruning_rule_states if result.backend == "optuna" else ray_rule_states)(sweep.folder, "mIoU")
    result.decisions_checked = len(rule)
    if held != rule:
        result.problems.append(f"pruning decisions {held} differ from the rule's {rule}")


def run_chaos(backend: str, *, kills: int, trials: int, epochs: int, epoch_s: float, seed: int, rng: random.Random,
              work: Path, max_delay_s: float, timeout_s: float = 600) -> ChaosResult:
    """Reference run, then the killed-and-resumed run of the same sweep; returns what was found."""
    result = ChaosResult(backend=backend)
    skill = make_fixture_skill(work / "skill")
    settings = {"trials": trials, "epochs": epochs, "epoch_s": epoch_s, "seed": seed}
    reference_sweep = write_sweep(work / "reference", skill, backend, **settings)
    started = time.perf_counter()
    code, err = finish(start_driver(reference_sweep, resume=False), timeout_s)
    result.reference_s = time.perf_counter() - started
    if code != 0:
        result.problems.append(f"the uninterrupted sweep exited {code}: {err[-2000:]}")
        return result
    reference = outcome(reference_sweep.folder)

    sweep = write_sweep(work / "chaos", skill, backend, **settings)
    started = time.perf_counter()
    ended = False
    while len(result.kills) < kills:
        # A driver killed before it wrote the sweep's folder left nothing to resume: it is started again.
        process = start_driver(sweep, resume=(sweep.folder / "sweep.yaml").is_file())
        delay = rng.uniform(0.3, max_delay_s)
        signum = rng.choice((signal.SIGKILL, signal.SIGTERM))
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
        if process.poll() is not None:  # the sweep finished before this kill point
            code, err = finish(process, timeout_s)
            if code != 0:
                result.problems.append(f"a driver run exited {code}: {err[-2000:]}")
            ended = True
            break
        os.kill(process.pid, signum)  # the driver only: its trainers live on, as after a real crash
        code, err = finish(process, timeout_s)
        kill = {"signal": signal.Signals(signum).name, "after_s": round(delay, 2), "exit": code}
        result.kills.append(kill)
        # SIGTERM: the driver pauses its trials and exits 130 (0 if it was just ending); before Python has
        # installed its handlers (the first moments of start-up) it dies of the signal, like a SIGKILL.
        if signum == signal.SIGTERM and code not in (130, 0, -signal.SIGTERM):
            result.problems.append(f"SIGTERM at {delay:.2f} s: the driver exited {code}, not 130: {err[-1500:]}")
        if signum == signal.SIGKILL and backend == "ray":
            time.sleep(2)  # Ray's own processes notice their driver is gone
        repeated = repeated_epochs(sweep.folder)
        if repeated:
            result.problems.append(f"after {kill}: epochs trained twice {repeated}")
    code, err = (0, "") if ended else finish(start_driver(sweep, resume=(sweep.folder / "sweep.yaml").is_file()),
                                             timeout_s)
    result.chaos_s = time.perf_counter() - started
    if code != 0:
        result.problems.append(f"the last resume exited {code}: {err[-2000:]}")
        return result
    check_final(result, sweep, reference, trials)
    return result


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


@contextmanager
def other_core_busy(enabled: bool) -> Iterator[None]:
    """Keep one core busy with a spinning process for the duration (the load CI runs under)."""
    if not enabled:
        yield
        return
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join(timeout=5)
        if spinner.is_alive():
            spinner.kill()


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Driver chaos: killed and resumed vs uninterrupted (same seed, one trial at a time)")
    for column in ("backend", "kill points", "SIGKILL", "SIGTERM", "trials", "lost", "epochs twice",
                   "same trials/states/champion", "decisions checked", "uninterrupted s", "chaos s"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["backend"], str(row["kill_points"]), str(row["sigkill"]), str(row["sigterm"]),
                      str(row["trials"]), str(row["trials_lost"]), str(row["epochs_trained_twice"]),
                      "yes" if row["same_as_uninterrupted"] else "NO", str(row["pruning_decisions_checked"]),
                      str(row["reference_s"]), str(row["chaos_s"]))
    Console(width=160).print(table)
    for row in rows:
        for problem in row["problems"]:
            print(f"[{row['backend']}] {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--kills", type=int, default=20, help="kill points per backend")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--epoch-seconds", type=float, default=0.3)
    parser.add_argument("--max-delay", type=float, default=None,
                        help=f"longest random wait before a kill (s); default per backend {MAX_DELAY_S}")
    parser.add_argument("--seed", type=int, default=11, help="sweep seed and kill-point seed")
    parser.add_argument("--no-busy", action="store_true", help="do not keep another core busy")
    parser.add_argument("--quick", action="store_true", help="CI form: Optuna, 5 kill points, 5 trials of 3 epochs")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "driver_chaos.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.backends, args.kills, args.trials, args.epochs, args.epoch_seconds = "optuna", 5, 5, 3, 0.2
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    rng = random.Random(args.seed)
    results = []
    with other_core_busy(not args.no_busy), tempfile.TemporaryDirectory(prefix="driver_chaos_") as tmp:
        for backend in backends:
            work = Path(tmp) / backend
            work.mkdir()
            results.append(run_chaos(backend, kills=args.kills, trials=args.trials, epochs=args.epochs,
                                     epoch_s=args.epoch_seconds, seed=args.seed, rng=rng, work=work,
                                     max_delay_s=args.max_delay or MAX_DELAY_S[backend]))
    rows = [r.row() for r in results]
    for r, row in zip(results, rows):
        row["kills"] = r.kills
    report = {
        "benchmark": "driver_chaos", "trials": args.trials, "epochs": args.epochs, "epoch_seconds": args.epoch_seconds,
        "kills_per_backend": args.kills, "max_delay_s": {b: args.max_delay or MAX_DELAY_S[b] for b in backends},
        "seed": args.seed,
        "other_core_busy": not args.no_busy, "rows": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": list(os.getloadavg())},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(rows)
    print(json.dumps({"rows": [{k: v for k, v in row.items() if k != "kills"} for row in rows]}, indent=2))
    return 0 if all(not r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

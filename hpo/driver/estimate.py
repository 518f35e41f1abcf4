"""How long a sweep will take, from measured times: what `hpo plan` prints and `hpo run` checks at the end.

    wall = set-up + trials + promotion

- trials: every trial's duration is its start-up (process start, imports, data, model, the last checkpoint)
  plus its epochs times the seconds per epoch (training, validation and checkpoint, as the trainer's
  `time_per_epoch` measures them). Epochs per trial follow the scheduler: asynchronous successive halving
  lets ceil(N / rate^k) of N trials past rung k (early trials are promoted before there is anyone to lose
  to, so the async form keeps more than the synchronous 1/rate^k); HyperBand/BOHB average their brackets;
  median stopping and PBT are counted at the full budget (an upper bound). The durations are scheduled
  greedily, longest first, onto the trials that run at once: `max_concurrent`, capped by the trials and by
  what the machine holds (CPU cores / `cpus_per_trial`, or GPUs / `gpus_per_trial`).
- set-up: creating the backend's state (the Optuna study in its SQLite storage, or starting a local Ray
  cluster), and the baseline evaluation when the base spec starts from a pretrained model. A pruned trial
  also pays its stop (SIGTERM, the trainer's checkpoint and exit).
- promotion: the final evaluation of the promoted checkpoint (the skill's evaluate command), and with MLflow
  tracking on, drawing the sweep's plots (set-up then also counts creating the sweep's SQLite store).
  Not counted: per-metric MLflow logging (milliseconds per validation).

Times come from a probe (`hpo plan --probe`, `hpo run --probe`): as many one-epoch runs of the base spec as
the sweep runs at once, started together so they compete for the machine as trials will (the first is
stopped with SIGTERM after its first epoch, as the engine prunes, timing the stop), followed by one
evaluation of a probe's checkpoint with the skill's evaluate command, exactly as promotion runs it, and
(tracking on) creating an MLflow store and drawing the plots of a sweep of this size in a scratch folder. Without
a probe, an existing sweep's own history gives seconds per epoch and start-up (said so); otherwise the
estimate is unknown, never guessed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import heapq
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.sweep.config import AlgorithmConfig, SweepConfig
from skillkit.files import TRIAL_FILE
from skillkit.states import RunStatus
from skillkit.status import STATUS_FILE, StatusFollower, StatusLine, read_lines

PROBE_DIR = "probe"


@dataclasses.dataclass(frozen=True)
class TimingEstimate:
    """Measured times the estimate is built from (None: unknown) and where they come from."""

    seconds_per_epoch: float | None
    startup_s: float | None
    source: str
    evaluate_s: float | None = None
    measured_parallel: int | None = None
    ray_start_s: float | None = None
    store_s: float | None = None
    plots_s: float | None = None
    backend_s: float | None = None
    stop_s: float | None = None
    package_s: float | None = None  # promotion's MLflow model, packaged by the skill (tracked sweeps)


@dataclasses.dataclass(frozen=True)
class WallEstimate:
    setup_s: float
    trials_s: float
    promotion_s: float
    parallel: int
    epochs: tuple[int, ...]

    @property
    def total_s(self) -> float:
        return self.setup_s + self.trials_s + self.promotion_s

    def to_dict(self) -> dict[str, Any]:
        return {"setup_s": round(self.setup_s, 1), "trials_s": round(self.trials_s, 1),
                "promotion_s": round(self.promotion_s, 1), "total_s": round(self.total_s, 1),
                "parallel": self.parallel, "epochs_per_trial": list(self.epochs)}


# -- the schedule ---------------------------------------------------------------------------------------------

def machine_slots(config: SweepConfig, *, cpus: int | None = None, gpus: int | None = None) -> int:
    """Trials that run at once: max_concurrent, capped by the trials and by the machine's CPUs or GPUs."""
    resources = config.resources
    slots = max(1, min(resources.max_concurrent, config.algorithm.max_trials))
    if resources.gpus_per_trial and resources.gpus_per_trial > 0:
        if gpus is None:
            from hpo.trials.resources import detect_gpus

            gpus = len(detect_gpus(resources.gpus))
        if gpus:
            slots = min(slots, max(1, int(gpus / resources.gpus_per_trial)))
    elif resources.cpus_per_trial and resources.cpus_per_trial > 0:
        cores = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                               else os.cpu_count() or 1)
        slots = min(slots, max(1, int(cores / resources.cpus_per_trial)))
    return slots


def trial_epochs(algorithm: AlgorithmConfig, max_epochs: int, trials: int) -> list[int]:
    """Epochs each of `trials` trials is expected to train under the scheduler (see the module docstring)."""
    scheduler, rate = algorithm.scheduler, max(2, int(algorithm.reduction_factor))
    if scheduler == "asha":
        rungs, rung = [], float(algorithm.grace_period)
        while rung < max_epochs:
            rungs.append(int(math.ceil(rung)))
            rung *= rate
        epochs = []
        for index in range(trials):
            # Every trial reaches rung 0; ceil(N / rate^(k+1)) of them go on past rung k.
            stops = [boundary for k, boundary in enumerate(rungs) if index >= math.ceil(trials / rate ** (k + 1))]
            epochs.append(stops[0] if stops else max_epochs)
        return sorted(epochs, reverse=True)
    if scheduler in ("hyperband", "hyperband_es", "bohb"):
        from hpo.driver.plan import expected_epochs

        mean = expected_epochs(algorithm, max_epochs)
        total = int(round(mean * trials))
        base, extra = divmod(total, trials)
        return [min(max_epochs, base + (1 if i < extra else 0)) for i in range(trials)]
    return [max_epochs] * trials


def makespan(durations: Sequence[float], slots: int) -> float:
    """Wall time of running `durations` on `slots` workers, longest first, each taking the next free one."""
    free = [0.0] * max(1, slots)
    for duration in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free) if durations else 0.0


def estimate_wall(config: SweepConfig, max_epochs: int, timing: TimingEstimate, *, has_baseline: bool = False,
                  promotes: bool = True, slots: int | None = None) -> WallEstimate | None:
    """The wall time of the sweep from `timing`; None when seconds per epoch are unknown."""
    if timing.seconds_per_epoch is None:
        return None
    slots = slots or machine_slots(config)
    startup, stop = timing.startup_s or 0.0, timing.stop_s or 0.0
    epochs = trial_epochs(config.algorithm, max_epochs, config.algorithm.max_trials)
    # A trial stopped before its budget (pruned) also pays the stop: SIGTERM, checkpoint, exit.
    trials_s = makespan([startup + n * timing.seconds_per_epoch + (stop if n < max_epochs else 0.0) for n in epochs],
                        slots)
    evaluate = timing.evaluate_s or 0.0
    tracking = config.tracking.enabled
    setup = ((timing.ray_start_s or 0.0) if config.backend == "ray" else 0.0) + (evaluate if has_baseline else 0.0) \
        + ((timing.store_s or 0.0) if tracking else 0.0) + (timing.backend_s or 0.0)
    finish = (evaluate if promotes else 0.0) + ((timing.plots_s or 0.0) if tracking else 0.0) \
        + ((timing.package_s or 0.0) if tracking and promotes else 0.0)
    return WallEstimate(setup_s=setup, trials_s=trials_s, promotion_s=finish, parallel=slots, epochs=tuple(epochs))


# -- where the times come from -------------------------------------------------------------------------------

def _epoch_line(line: StatusLine) -> bool:
    """A RUNNING line that measured an epoch."""
    return line.status == RunStatus.RUNNING and line.time_per_epoch is not None and line.time_per_epoch > 0


def history_timing(trials_dir: Path, best_json: Path | None = None) -> TimingEstimate | None:
    """Seconds per epoch (median of the epochs this sweep trained) and start-up (median over trials of the
    first epoch line's time after the trial's start, less that epoch) from a sweep's own trials."""
    per_epoch: list[float] = []
    startups: list[float] = []
    for trial_dir in sorted(trials_dir.glob("*")) if trials_dir.is_dir() else []:
        lines = read_lines(trial_dir / STATUS_FILE)
        started = _launched_at(trial_dir) or next((line.timestamp for line in lines if line.status == RunStatus.STARTED), None)
        first = next((line for line in lines if _epoch_line(line)), None)
        per_epoch.extend(line.time_per_epoch for line in lines if _epoch_line(line))  # type: ignore[misc]
        if started is not None and first is not None and first.timestamp is not None:
            startups.append(max(0.0, first.timestamp - started - first.time_per_epoch))  # type: ignore[operator]
    if not per_epoch:
        return None
    evaluate_s = None
    if best_json is not None and best_json.is_file():
        import json

        run = ((json.loads(best_json.read_text()).get("evaluation") or {}).get("run") or {})
        evaluate_s = run.get("seconds") if isinstance(run.get("seconds"), (int, float)) else None
    return TimingEstimate(
        statistics.median(per_epoch), statistics.median(startups) if startups else None,
        f"reusing this sweep's history: median of {len(per_epoch)} epochs in its trials (`--probe` measures afresh)",
        evaluate_s=evaluate_s,
    )


def _launched_at(trial_dir: Path) -> float | None:
    """When the engine launched the trial (trial.json's `started_at`): the trainer's STARTED line comes
    only after its imports, which belong to the start-up."""
    import json

    try:
        return _dt.datetime.fromisoformat(json.loads((trial_dir / TRIAL_FILE).read_text())["started_at"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def probe_timing(ctx: Any, *, timeout_s: float = 1800.0) -> TimingEstimate:
    """Train the base spec (schema defaults for the searched values) for one epoch in as many copies as the
    sweep runs at once, started together; then evaluate one copy's checkpoint as promotion would."""
    import shutil

    from hpo.trials.runner import TrainerProcess, TrialLaunch

    folder = ctx.workspace.plan_dir / PROBE_DIR
    if folder.exists():
        shutil.rmtree(folder)
    slots = machine_slots(ctx.config)
    defaults = {p.name: p.default for p in ctx.space.parameters if getattr(p, "default", None) is not None}
    processes = []
    for index in range(slots):
        run_dir = folder / f"run_{index}"
        run_dir.mkdir(parents=True)
        try:
            spec = ctx.trial_spec(defaults, run_dir)
        except Exception:  # noqa: BLE001 - defaults may not satisfy conditions; the base spec alone is the fallback
            spec = ctx.trial_spec({}, run_dir)
        spec_path = ctx.write_trial_spec(spec, run_dir)
        # run_0 would train two epochs: it is stopped after its first, as the engine stops a pruned trial.
        env = {**ctx.trial_env(cuda_visible_devices=None), "EARLY_STOP_EPOCH": "2" if index == 0 else "1"}
        launch = TrialLaunch(trial_id=f"probe_{index}", trial_dir=run_dir, argv=ctx.train_argv(spec_path),
                             metric=ctx.metric, env=env, timeout_s=timeout_s, stop_grace_s=ctx.config.trial.stop_grace_s)
        processes.append((run_dir, spec, TrainerProcess(launch)))
    started = time.monotonic()
    for _, _, process in processes:
        process.start()
    stop_s = _stop_after_first_epoch(processes[0][0], processes[0][2], timeout_s)
    walls, epochs, failure = [], [], None
    for index, (run_dir, _, process) in enumerate(processes):
        outcome = process.wait()
        if index > 0 or len(processes) == 1:
            walls.append(time.monotonic() - started)
        times = [line.time_per_epoch for line in read_lines(run_dir / STATUS_FILE)
                 if _epoch_line(line) and line.time_per_epoch is not None]
        if times:
            epochs.append(times[0])
        elif failure is None:
            failure = outcome.failure.reason.splitlines()[0] if outcome.failure else "no time_per_epoch in status.json"
    if not epochs:
        return TimingEstimate(None, None, f"probe failed ({failure})")
    per_epoch = statistics.mean(epochs)
    startup = max(0.0, statistics.mean(walls) - per_epoch)
    evaluate_s, evaluate_note = _probe_evaluation(ctx, processes[0][0], processes[0][1])
    package_s, package_note = (_probe_packaging(ctx, processes[0][0], processes[0][1])
                               if ctx.config.tracking.enabled else (None, None))
    if len(processes) == 1 and stop_s is not None:
        walls = [walls[0] - stop_s - per_epoch]  # the single run also trained part of a second epoch
        startup = max(0.0, walls[0])
    ray_start_s = _time_ray_start() if ctx.config.backend == "ray" else None
    backend_s = _time_backend_state(ctx, folder / "backend") if ctx.config.backend == "optuna" else None
    store_s = plots_s = None
    if ctx.config.tracking.enabled:
        store_s, plots_s = _time_tracking(ctx, folder / "tracking")
    at_once = f"{slots} runs at once" if slots > 1 else "one run"
    notes = [f"probe: {at_once} of one epoch of the base spec: {per_epoch:.1f}s per epoch, {startup:.1f}s start-up",
             evaluate_note]
    if package_note is not None:
        notes.append(package_note)
    if ray_start_s is not None:
        notes.append(f"Ray start {ray_start_s:.1f}s")
    if stop_s is not None:
        notes.append(f"stopping a trial {stop_s:.1f}s")
    if backend_s is not None:
        notes.append(f"Optuna storage {backend_s:.1f}s")
    if store_s is not None:
        notes.append(f"MLflow store {store_s:.1f}s, plots {plots_s:.1f}s" if plots_s is not None else
                     f"MLflow store {store_s:.1f}s")
    return TimingEstimate(per_epoch, startup, "; ".join(notes), evaluate_s=evaluate_s, measured_parallel=slots,
                          ray_start_s=ray_start_s, store_s=store_s, plots_s=plots_s, backend_s=backend_s,
                          stop_s=stop_s, package_s=package_s)


def _stop_after_first_epoch(run_dir: Path, process: Any, timeout_s: float) -> float | None:
    """Wait for the run's first epoch line, then stop it as the engine stops a pruned trial; seconds from
    SIGTERM to exit (None when the run ended or failed first)."""
    deadline = time.monotonic() + timeout_s
    follower = StatusFollower(run_dir / STATUS_FILE)
    while time.monotonic() < deadline and process.running():
        if any(_epoch_line(line) for line in follower.poll()):
            stopped = time.monotonic()
            process.stop()
            process.wait()
            return time.monotonic() - stopped
        time.sleep(0.05)
    return None


def _time_backend_state(ctx: Any, folder: Path) -> float | None:
    """Seconds to create the sweep's Optuna study in a scratch SQLite storage of the kind the backend makes
    (an existing database, e.g. PostgreSQL, is not timed: its tables exist already)."""
    import shutil

    if ctx.config.storage:
        return None
    from hpo.backends.optuna_factory import make_storage, storage_url

    (folder / "warm").mkdir(parents=True, exist_ok=True)
    try:
        import optuna

        # Once to load the database libraries (a one-time cost the run shares with the probe), once timed.
        optuna.create_study(study_name="warm", storage=make_storage(storage_url(None, folder / "warm")),
                            direction=ctx.direction)
        started = time.monotonic()
        optuna.create_study(study_name="probe", storage=make_storage(storage_url(None, folder)),
                            direction=ctx.direction)
        return time.monotonic() - started
    except Exception:  # noqa: BLE001 - not timed; the estimate says what it counted
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _time_tracking(ctx: Any, folder: Path) -> tuple[float | None, float | None]:
    """Seconds to create a SQLite MLflow store (when the sweep uses its default one) and to draw the plots of
    a sweep of this size, both in `folder` (deleted afterwards)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    store_s = None
    try:
        if not ctx.config.tracking.tracking_uri:
            from mlflow import MlflowClient

            started = time.monotonic()
            MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").create_experiment("probe")
            store_s = time.monotonic() - started
        from hpo.tracking.plots import make_plots

        epochs = trial_epochs(ctx.config.algorithm, ctx.max_epochs, ctx.config.algorithm.max_trials)
        names = [p.name for p in ctx.space.parameters]
        trials = [{"trial_id": f"t{i}", "number": i, "state": "COMPLETED" if n == max(epochs) else "PRUNED",
                   "params": {name: (i + 1) * (j + 1) for j, name in enumerate(names)},
                   "history": [{"epoch": e, "kpi": {ctx.metric: 0.1 + 0.01 * (i + e)}} for e in range(1, n + 1)]}
                  for i, n in enumerate(epochs)]
        started = time.monotonic()
        make_plots({"metric": ctx.metric, "direction": ctx.direction, "trials": trials}, folder / "plots")
        return store_s, time.monotonic() - started
    except Exception:  # noqa: BLE001 - an estimate without these parts is still an estimate; said as unknown
        return store_s, None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _time_ray_start() -> float | None:
    """Seconds to start (and stop) a local Ray cluster, in a fresh process as the driver would."""
    import subprocess
    import sys

    started = time.monotonic()
    code = "import ray; ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False); ray.shutdown()"
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return time.monotonic() - started


def _probe_evaluation(ctx: Any, run_dir: Path, train_spec: dict[str, Any]) -> tuple[float | None, str]:
    """Seconds of the skill's evaluate command on the probe's checkpoint, with the spec promotion would write."""
    if not ctx.config.promotion_enabled or "evaluate" not in (ctx.skill.info.get("actions") or {}):
        return None, "no final evaluation (promotion off or the skill has no evaluate action)"
    from hpo.promotion.evaluation import SkillEvaluator
    from hpo.promotion.specs import HandoffPaths, build_handoff_specs
    from skillkit.checkpoints import list_checkpoints
    from skillkit.spec import dump_spec

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return None, "final evaluation not timed (the probe wrote no checkpoint)"
    templates = {action: ctx.skill.template(action) for action in ("evaluate", "export")
                 if ctx.skill.has_template(action)}
    paths = HandoffPaths(best_dir=run_dir / "promotion", checkpoint=checkpoints[-1].path)
    try:
        specs = build_handoff_specs(train_spec, paths, templates=templates, actions=("evaluate",))
    except Exception as error:  # noqa: BLE001 - a skill whose specs promotion cannot build: said, not fatal here
        return None, f"final evaluation not timed ({error})"
    spec_path = dump_spec(specs.evaluate or {}, paths.best_dir / "evaluate_spec.yaml")
    env = {str(k): str(v) for k, v in ctx.config.trial.env.items()}
    result = SkillEvaluator(ctx.skill.path, env=env)(spec_path, paths.evaluate_dir, ctx.metric)
    if result.error or result.returncode != 0:
        return None, f"final evaluation not timed (it failed: {(result.error or 'exit ' + str(result.returncode))})"
    return result.seconds, f"final evaluation {result.seconds:.1f}s"


def _probe_packaging(ctx: Any, run_dir: Path, train_spec: dict[str, Any]) -> tuple[float | None, str | None]:
    """Seconds of the skill's `x_mlflow_model` command on the probe's checkpoint, as promotion of a tracked
    sweep runs it (`hpo.promotion.mlflow_model.package_model`); None (and no note) when the skill offers none."""
    actions = ctx.skill.info.get("actions") or {}
    if not ctx.config.promotion_enabled or not ctx.skill.info.get("x_mlflow_model") or "inference" not in actions:
        return None, None
    from hpo.promotion.evaluation import SkillEvaluator
    from hpo.promotion.mlflow_model import package_model
    from hpo.promotion.specs import HandoffPaths, build_handoff_specs
    from skillkit.checkpoints import list_checkpoints
    from skillkit.redaction import Redactor

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return None, "MLflow model packaging not timed (the probe wrote no checkpoint)"
    templates = {"inference": ctx.skill.template("inference")} if ctx.skill.has_template("inference") else {}
    paths = HandoffPaths(best_dir=run_dir / "promotion", checkpoint=checkpoints[-1].path)
    try:
        specs = build_handoff_specs(train_spec, paths, templates=templates, actions=("inference",))
    except Exception as error:  # noqa: BLE001 - a skill whose specs promotion cannot build: said, not fatal here
        return None, f"MLflow model packaging not timed ({error})"
    if specs.inference is None:
        return None, None
    env = {str(k): str(v) for k, v in ctx.config.trial.env.items()}
    started = time.monotonic()
    packaged = package_model(SkillEvaluator(ctx.skill.path, env=env), specs.inference, checkpoints[-1].path,
                             run_dir / "mlflow_model", Redactor())
    seconds = time.monotonic() - started
    if packaged.error:
        return None, f"MLflow model packaging not timed (it failed: {packaged.error.splitlines()[0]})"
    return seconds, f"MLflow model packaging {seconds:.1f}s"


CHECK_FILE = "estimate_check.json"


def check_estimate(plan_dir: Path, estimated_s: float | None, actual_s: float) -> str:
    """Record the estimate against the actual wall time (`plan/estimate_check.json`) and say it in one line."""

    from skillkit.files import atomic_write_json

    error = (estimated_s - actual_s) / actual_s if estimated_s is not None and actual_s > 0 else None
    atomic_write_json(plan_dir / CHECK_FILE, {"estimated_s": estimated_s, "actual_s": round(actual_s, 1),
                                              "relative_error": None if error is None else round(error, 3)})
    took = f"the sweep took {format_duration(actual_s)}"
    if error is None:
        return f"{took} (no estimate: `--probe` measures one first)"
    return f"{took}; the plan estimated {format_duration(estimated_s)} ({error:+.0%})"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")

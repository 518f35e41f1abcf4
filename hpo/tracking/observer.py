"""MLflow logging of a sweep, driven by the engine's sweep events (a `SweepObserver`).

The engine calls the observer in the driver process; trainers know nothing about MLflow. One experiment per
sweep name holds one parent run per sweep and one child run per trial (`mlflow.parentRunId`):

- parent: the sweep config flattened to dotted params, algorithm, budget and the compiled space's ranges;
  `sweep.yaml` and `space.yaml` as artifacts; tags `automl_policy`, `skill`, `backend`, `algorithm`,
  `metric`, `direction`. At the end: best trial/epoch/metric/params, trial counts, GPU-hours, summary.json
  and the plots (see `plots.py`).
- child: the sampled params (dotted names), every numeric KPI of every validation with step = epoch (TAO's
  0-based index, as in status.json and the checkpoint names) (mIoU, PQ/AP, pixel_acc, train/val loss, lr)
  plus `epoch_time` and `global_step`, all taken from the engine's report (the whole status line: no file
  is read again), the trial spec, and at the end the status log, the trial record, `best_<metric>`,
  `gpu_hours` and the final state: FINISHED (completed, and pruned -- a pruned trial ended as the scheduler
  meant it to, so it is no crash: the tag `pruned` = "true" and `hpo.pruned_at_epoch` tell it apart;
  completed trials carry `pruned` = "false"), KILLED (paused, to be resumed), FAILED (tag
  `hpo.failure_class`).

Nothing raised here reaches the engine: a failing observer logs a warning and the sweep goes on; MLflow
outages are absorbed by the tracker's journal.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hpo.driver.observer import SweepObserver
from hpo.tracking import sweep_files
from hpo.tracking.dashboards import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from hpo.tracking.params import algorithm_name, sweep_params
from hpo.tracking.settings import TrackingSettings
from hpo.tracking.tracker import Tracker
from hpo.trials.record import TrialRecord
from skillkit.files import LOG_FILE, SPEC_FILE, TRIAL_FILE, TRIALS_DIR
from skillkit.redaction import Redactor
from skillkit.status import STATUS_FILE
from skillkit.status.format import line_timestamp

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext

logger = logging.getLogger(__name__)

SWEEP_RUN = "sweep"
MLFLOW_STATUS = {"COMPLETED": "FINISHED", "PRUNED": "FINISHED", "PAUSED": "KILLED", "FAILED": "FAILED"}
PRUNED_TAG = "pruned"
MAX_LOG_BYTES = 5 * 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def trial_key(trial_id: Any) -> str:
    """Local run key of a trial's child run."""
    return f"trial/{trial_id}"


def _never_raises(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: MlflowObserver, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - tracking must never stop a sweep
            logger.warning("MLflow tracking: %s failed; the sweep continues", method.__name__, exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


class MlflowObserver(SweepObserver):
    """Logs a sweep to MLflow through a journaled `Tracker`.

    The hooks take what the engine sends (`hpo.driver.observer.SweepObserver`): the sweep context, trial
    records, report entries (the whole status line) and the summary. `sweep_dir` may be given here or is the
    context's workspace; a replay from files (`log_sweep_from_files`) gives it here and sends no context.
    Settings come from the sweep config's `tracking` section unless given.
    """

    def __init__(self, sweep_dir: str | os.PathLike[str] | None = None, *, settings: TrackingSettings | None = None,
                 tracker: Tracker | None = None, plots: bool = True) -> None:
        self.plots = plots
        self.sweep_dir = Path(sweep_dir).resolve() if sweep_dir is not None else None
        self._settings = settings
        self.tracker = tracker
        self.config: dict[str, Any] = {}
        self.metric = sweep_files.DEFAULT_METRIC
        self.direction = "maximize"
        self._reported: dict[str, set[int]] = {}

    @property
    def enabled(self) -> bool:
        return self.tracker is not None

    # -- SweepObserver ---------------------------------------------------------------------------------
    @_never_raises
    def sweep_started(self, sweep: SweepContext | None = None) -> None:
        self._open(sweep)
        if self.tracker is None:
            return
        tracker, config = self.tracker, self.config
        tags = {
            "hpo.run_kind": "sweep",
            "hpo.sweep": config.get("name") or self._folder.name,
            "hpo.sweep_dir": str(self.sweep_dir),
            "automl_policy": config.get("automl_policy") or "on",
            "skill": sweep_files.skill_name(config),
            "backend": config.get("backend") or "ray",
            "algorithm": algorithm_name(config),
            "metric": self.metric,
            "direction": self.direction,
        }
        tracker.ensure_experiment(tags={"hpo.sweep": tags["hpo.sweep"], EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        if tracker.start_run(SWEEP_RUN, run_name=str(tags["hpo.sweep"]), tags=tags):
            space = sweep_files.load_space(self._folder)
            tracker.log_params(SWEEP_RUN, sweep_params(config, space, metric=self.metric, direction=self.direction))
            tracker.log_yaml(SWEEP_RUN, config, "sweep.yaml")
            if space is not None:
                tracker.log_artifact(SWEEP_RUN, self._folder / sweep_files.SPACE_FILE)

    @_never_raises
    def trial_started(self, trial_record: TrialRecord) -> None:
        if self.tracker is None:
            return
        trial = trial_record.to_dict()
        key = trial_key(trial["trial_id"])
        number = trial.get("number")
        tags = {"hpo.run_kind": "trial", "hpo.trial_id": trial["trial_id"], "hpo.sweep": self._sweep_name,
                "hpo.state": trial.get("state") or "RUNNING"}
        if number is not None:
            tags["hpo.trial_number"] = number
        run_name = f"trial-{number:04d}" if isinstance(number, int) else f"trial-{trial['trial_id']}"
        if self.tracker.start_run(key, parent=SWEEP_RUN, run_name=run_name,
                                  start_time=sweep_files.parse_time(trial.get("started_at")), tags=tags):
            self.tracker.log_params(key, trial.get("params") or {})
            spec = self._trial_dir(trial) / SPEC_FILE
            if spec.is_file():
                self.tracker.log_artifact(key, spec)
        self._share_run_id(trial_record, key)

    @_never_raises
    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        if self.tracker is None:
            return
        self._log_report(trial_key(trial_record.trial_id), report)

    @_never_raises
    def trial_finished(self, trial_record: TrialRecord) -> None:
        if self.tracker is None:
            return
        trial = trial_record.to_dict()
        key = trial_key(trial["trial_id"])
        if not self.tracker.has_run(key):
            self.trial_started(trial_record)
        for entry in trial.get("history") or []:
            self._log_report(key, entry)  # anything the engine reported while we were not attached
        state = str(trial.get("state") or "")
        tags: dict[str, Any] = {"hpo.state": state}
        if state in ("COMPLETED", "PRUNED"):
            tags[PRUNED_TAG] = "true" if state == "PRUNED" else "false"
        if state == "PRUNED":
            tags["hpo.pruned_at_epoch"] = max([int(entry.get("epoch", 0)) for entry in trial.get("history") or []] or [0])
        if trial.get("failure_class"):
            tags["hpo.failure_class"] = trial["failure_class"]
        if trial.get("failure_reason"):
            tags["hpo.failure_reason"] = str(trial["failure_reason"])[:2000]
        best = trial.get("best") or {}
        if best:
            tags.update({"hpo.best_epoch": best.get("epoch"), "hpo.best_checkpoint": best.get("checkpoint")})
        self.tracker.set_tags(key, tags)
        final: dict[str, Any] = {"gpu_hours": sweep_files.gpu_hours(trial), "wall_hours": sweep_files.trial_hours(trial)}
        if best.get("metric") is not None:
            final[f"best_{self.metric}"] = best["metric"]
        last_epoch = max([int(entry.get("epoch", 0)) for entry in trial.get("history") or []] or [0])
        self.tracker.log_metrics(key, final, step=last_epoch, timestamp=sweep_files.parse_time(trial.get("ended_at")))
        trial_dir = self._trial_dir(trial)
        self.tracker.log_json(key, trial, TRIAL_FILE)  # the record as given: trial.json may be saved after this call
        if (trial_dir / STATUS_FILE).is_file():
            self.tracker.log_artifact(key, trial_dir / STATUS_FILE, artifact_path="logs")
        log = trial_dir / LOG_FILE
        if log.is_file():
            self._log_tail(key, log)
        if state in MLFLOW_STATUS:
            self.tracker.end_run(key, MLFLOW_STATUS[state], end_time=sweep_files.parse_time(trial.get("ended_at")))

    @_never_raises
    def sweep_finished(self, summary: Mapping[str, Any] | None = None) -> None:
        if self.tracker is None:
            return
        summary_dict = dict(summary or {})
        if not summary_dict.get("trials"):
            summary_dict = sweep_files.load_summary(self._folder, self.config)
        still_open = self.tracker.journal.open_runs()
        for trial in summary_dict.get("trials") or []:
            key = trial_key(trial.get("trial_id"))
            if str(trial.get("state")) in MLFLOW_STATUS and (key in still_open or not self.tracker.has_run(key)):
                # a trial whose end the observer did not see (driver killed, late attach)
                self.trial_finished(TrialRecord.from_dict(trial, metric=self.metric, direction=self.direction))
        from hpo.tracking.summary import log_sweep_summary

        log_sweep_summary(self.tracker, self._folder, summary_dict, metric=self.metric, direction=self.direction,
                          plots=self.plots)
        self.tracker.end_run(SWEEP_RUN, "FINISHED")
        result = self.tracker.flush(force=True)
        if not result.complete:
            logger.warning(
                "MLflow tracking: %d operation(s) could not be logged yet (%s); they are kept in %s. Run "
                "'hpo sync-tracking %s' once the tracking server is back.",
                result.pending, result.error, self.tracker.journal.path, self.sweep_dir,
            )

    # -- helpers ---------------------------------------------------------------------------------------
    def _open(self, sweep: SweepContext | None) -> None:
        if self.sweep_dir is None:
            if sweep is None:
                raise ValueError("MlflowObserver needs the sweep folder: pass sweep_dir= or the sweep context")
            self.sweep_dir = Path(sweep.workspace.root).resolve()
        self.config = sweep_files.load_config(self.sweep_dir) or (_config_of(sweep) if sweep is not None else {})
        metric = sweep.metric if sweep is not None else None
        self.metric = metric if metric and metric != "kpi" else sweep_files.resolve_metric(self.config)
        direction = sweep.direction if sweep is not None else None
        self.direction = direction if direction in ("maximize", "minimize") else sweep_files.resolve_direction(
            self.config, self.metric)
        if self.tracker is None:
            settings = self._settings or TrackingSettings.for_sweep(self.sweep_dir, self.config)
            if not settings.enabled:
                return
            redactor = Redactor()
            redactor.learn(self.config)
            self.tracker = Tracker(settings, self.sweep_dir, redactor=redactor)
        if sweep is not None:
            self.tracker.redactor.learn(sweep.base_spec)  # secrets of the spec are masked in logs before any spec is seen
        self._reported = _reported_steps(self.tracker)

    @property
    def _folder(self) -> Path:
        """The sweep folder (known from construction or from `sweep_started`)."""
        if self.sweep_dir is None:
            raise RuntimeError("MlflowObserver: a hook ran before sweep_started named the sweep folder")
        return self.sweep_dir

    @property
    def _live(self) -> Tracker:
        """The tracker, for helpers that only run once a hook has checked tracking is on."""
        if self.tracker is None:
            raise RuntimeError("MlflowObserver: tracking is off for this sweep")
        return self.tracker

    @property
    def _sweep_name(self) -> str:
        return str(self.config.get("name") or (self.sweep_dir.name if self.sweep_dir else ""))

    def _trial_dir(self, trial: Mapping[str, Any]) -> Path:
        return self._folder / TRIALS_DIR / str(trial["trial_id"])

    def _log_report(self, key: str, report: Mapping[str, Any]) -> None:
        """Log one validation (a trial.json history entry: the whole status line) once per epoch."""
        epoch = report.get("epoch")
        if epoch is None:
            return
        epoch = int(epoch)
        done = self._reported.setdefault(key, set())
        if epoch in done:
            return
        metrics: dict[str, Any] = dict(report.get("kpi") or {})
        duration = report.get("time_per_epoch")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            metrics["epoch_time"] = duration
        step = report.get("step")
        if isinstance(step, int):
            metrics.setdefault("global_step", step)
        # The status line's own clock makes the timestamp deterministic, so a replay or a resumed driver
        # re-sending this epoch is a no-op for MLflow instead of a second point.
        self._live.log_metrics(key, metrics, step=epoch, timestamp=_report_time(report))
        done.add(epoch)

    def _log_tail(self, key: str, path: Path) -> None:
        size = path.stat().st_size
        if size <= MAX_LOG_BYTES:
            self._live.log_artifact(key, path, artifact_path="logs")
            return
        with open(path, "rb") as handle:
            handle.seek(size - MAX_LOG_BYTES)
            tail = handle.read().decode("utf-8", errors="replace")
        self._live.log_text(key, f"[... first {size - MAX_LOG_BYTES} bytes left out ...]\n{tail}", path.name,
                              artifact_path="logs")

    def _share_run_id(self, trial_record: TrialRecord, key: str) -> None:
        """Hand the child run id back to the engine's record (trial.json's `mlflow_run_id`) once it exists."""
        run_id = self._live.run_id(key)
        if run_id:
            trial_record.mlflow_run_id = run_id


def make_sweep_observer(sweep: SweepContext) -> MlflowObserver | None:
    """The engine's factory hook: an observer for the sweep context `sweep`, or None when tracking is off."""
    sweep_dir = Path(sweep.workspace.root).resolve()
    config = sweep_files.load_config(sweep_dir) or _config_of(sweep)
    settings = TrackingSettings.for_sweep(sweep_dir, config)
    return MlflowObserver(sweep_dir, settings=settings) if settings.enabled else None


def log_sweep_from_files(sweep_dir: str | os.PathLike[str], *, settings: TrackingSettings | None = None,
                         plots: bool = True) -> MlflowObserver:
    """Log (or complete the log of) a sweep from its files, as if the observer had watched it live.

    Used for sweeps run without tracking, and by promotion when a trial has no run yet. Idempotent: runs
    the journal already holds are reopened, epochs already logged are not logged again.
    """
    sweep_dir = Path(sweep_dir).resolve()
    observer = MlflowObserver(sweep_dir, settings=settings, plots=plots)
    observer.sweep_started()
    if observer.tracker is None:
        return observer
    summary = sweep_files.load_summary(sweep_dir, observer.config)
    for trial in summary["trials"]:
        record = TrialRecord.from_dict(trial, metric=observer.metric, direction=observer.direction)
        if not observer.tracker.has_run(trial_key(record.trial_id)):
            observer.trial_started(record)
        for entry in record.history:
            observer.trial_reported(record, entry)
        if record.state in MLFLOW_STATUS:
            observer.trial_finished(record)
    if all(str(t.get("state")) in MLFLOW_STATUS for t in summary["trials"]):
        observer.sweep_finished(summary)
    return observer


def _config_of(sweep: SweepContext) -> dict[str, Any]:
    """The sweep config as the user wrote it (for a sweep folder that has no sweep.yaml yet)."""
    return dict(sweep.config.raw)


def _report_time(report: Mapping[str, Any]) -> float | None:
    """The moment of a report (status line `date` + `time`, or a clock reading), so re-logging is a no-op."""
    stamped = line_timestamp(report.get("date"), report.get("time"))
    if stamped is not None:
        return stamped
    for name in ("timestamp", "reported_at", "seen_at", "time"):
        value = report.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1e8:
            return float(value)
        if isinstance(value, str):
            parsed = sweep_files.parse_time(value)
            if parsed is not None:
                return parsed
    return None


def _reported_steps(tracker: Tracker) -> dict[str, set[int]]:
    """Epochs already logged per run, read back from the journal, so a resumed driver does not log twice."""
    steps: dict[str, set[int]] = {}
    for entry in tracker.journal.entries():
        if entry.get("op") == "log" and entry.get("metrics"):
            names = {row[0] for row in entry["metrics"]}
            if "gpu_hours" in names:
                continue  # the end-of-trial summary metrics, not a validation report
            steps.setdefault(str(entry["key"]), set()).update(int(row[2]) for row in entry["metrics"])
    return steps

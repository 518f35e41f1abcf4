"""What a person watching a sweep sees: a live rich table in a terminal (trial, state, epoch, metric, best so
far, ETA), one log line per event otherwise (CI logs), and the same table for `hpo status` from another
terminal, built from the trial.json files.

ETAs come from observed epoch times, never from a guess: a running trial's is its own mean `time_per_epoch`
(the sweep's mean before its first epoch ends) times the epochs left to its budget, less the time since its
last status line; the sweep's (in the live table's title) adds the trials not started yet, at the epochs the
scheduler is expected to give them (`estimate.trial_epochs`) and the start-up observed so far, spread over
the trials that run at once. A trial the scheduler prunes finishes sooner than its ETA says.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hpo.driver.default_vs_best import line as default_vs_best_line
from hpo.driver.observer import SweepObserver
from hpo.trials.record import FAILED, RUNNING, TrialRecord, best_trial
from skillkit.states import RunStatus
from skillkit.status import STATUS_FILE, read_lines

STATE_STYLE = {"RUNNING": "cyan", "COMPLETED": "green", "PRUNED": "yellow", "PAUSED": "magenta", "FAILED": "red"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def observed_epochs(trial_dir: Path, *, launched_at: float | None = None) -> tuple[list[float], float | None]:
    """(the trial's measured epoch times, its start-up: first epoch line − launch − that epoch), from its
    status.json. The launch is the engine's (`launched_at`, the record's start) when given: the trainer's
    own STARTED line comes after its imports, which are part of the start-up."""
    times: list[float] = []
    started, startup = launched_at, None
    for line in read_lines(trial_dir / STATUS_FILE):
        value = line.time_per_epoch
        if line.status == RunStatus.STARTED and started is None:
            started = line.timestamp
        if line.status == RunStatus.RUNNING and value is not None and value > 0:
            if startup is None and started is not None and line.timestamp is not None:
                startup = max(0.0, line.timestamp - started - value)
            times.append(value)
    return times, startup


def _timestamp(iso: str | None) -> float | None:
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def trial_eta(trial_dir: Path, *, epochs_done: int, max_epochs: int | None, fallback_epoch_s: float | None,
              now: float | None = None) -> float | None:
    """Seconds a running trial needs for the rest of its budget of `max_epochs` after `epochs_done` epochs
    trained, from observed epoch times (None: unknown)."""
    if not max_epochs:
        return None
    times, _ = observed_epochs(trial_dir)
    per_epoch = sum(times) / len(times) if times else fallback_epoch_s
    if per_epoch is None:
        return None
    try:
        since = (now if now is not None else time.time()) - (trial_dir / STATUS_FILE).stat().st_mtime
    except OSError:
        since = 0.0
    return max(0.0, per_epoch * max(0, max_epochs - epochs_done) - since)


def trials_table(records: Iterable[TrialRecord], *, metric: str, direction: str, max_epochs: int | None,
                 trials_dir: Path | None = None, title: str | None = None,
                 fallback_epoch_s: float | None = None) -> Table:
    records = sorted(records, key=lambda r: r.number)
    table = Table(title=title, title_justify="left")
    for column in ("trial", "state", "epoch", metric, "trial best", "best so far", "ETA"):
        table.add_column(column, justify="right" if column not in ("trial", "state") else "left")
    seen: list[TrialRecord] = []
    for record in records:
        values = record.metric_values()
        last = values[-1][1] if values else None
        seen.append(record)
        leader = best_trial(seen, direction)  # "best so far" is what promotion would pick: completed trials only
        running_best = leader.best_value() if leader else None
        eta = None
        if record.state == RUNNING and trials_dir is not None:
            eta = trial_eta(trials_dir / record.trial_id, epochs_done=record.epochs_trained(), max_epochs=max_epochs,
                            fallback_epoch_s=fallback_epoch_s)
        state = record.state + (f" ({record.failure_class})" if record.failure_class else "")
        epoch = f"{record.epochs_trained()}/{max_epochs}" if max_epochs else str(record.epochs_trained())
        table.add_row(record.trial_id, f"[{STATE_STYLE.get(record.state, '')}]{state}[/]", epoch, _fmt(last),
                      _fmt(record.best_value()), _fmt(running_best), _eta(eta))
    return table


class LiveTable(SweepObserver):
    """Observer that keeps a live table on a terminal, or prints one line per event when not on one."""

    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console()
        self.use_live = self.console.is_terminal if live is None else live
        self.records: dict[str, TrialRecord] = {}
        self._live: Live | None = None
        self.metric, self.direction, self.max_epochs = "metric", "maximize", None
        self.trials_dir: Path | None = None
        self.planned_epochs: list[int] = []
        self.slots = 1

    def _render(self) -> Table:
        epoch_s, startup_s = self._observed()
        return trials_table(self.records.values(), metric=self.metric, direction=self.direction,
                            max_epochs=self.max_epochs, trials_dir=self.trials_dir, fallback_epoch_s=epoch_s,
                            title=self._title(epoch_s, startup_s))

    def _observed(self) -> tuple[float | None, float | None]:
        """The sweep's mean observed epoch time and trial start-up so far."""
        times: list[float] = []
        startups: list[float] = []
        for trial_id, record in self.records.items() if self.trials_dir else ():
            trial_times, startup = observed_epochs(self.trials_dir / trial_id,  # type: ignore[operator]
                                                   launched_at=_timestamp(record.started_at))
            times += trial_times
            startups += [startup] if startup is not None else []
        return (sum(times) / len(times) if times else None, sum(startups) / len(startups) if startups else None)

    def _title(self, epoch_s: float | None, startup_s: float | None) -> str | None:
        """The sweep's ETA from observed times (None until an epoch has been timed)."""
        if epoch_s is None or not self.planned_epochs or self.trials_dir is None:
            return None
        running = [trial_eta(self.trials_dir / r.trial_id, epochs_done=r.epochs_trained(), max_epochs=self.max_epochs,
                             fallback_epoch_s=epoch_s) or 0.0 for r in self.records.values() if r.state == RUNNING]
        queued = self.planned_epochs[len(self.records):]
        work = sum(running) + sum((startup_s or 0.0) + n * epoch_s for n in queued)
        return (f"sweep ETA {_eta(work / max(1, self.slots))}: observed {epoch_s:.1f}s per epoch, "
                f"{len(self.records)} of {len(self.planned_epochs)} trials started")

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def sweep_started(self, sweep: Any) -> None:
        from hpo.driver.estimate import machine_slots, trial_epochs

        self.metric, self.direction, self.max_epochs = sweep.metric, sweep.direction, sweep.max_epochs
        self.trials_dir = sweep.workspace.trials_dir
        self.planned_epochs = trial_epochs(sweep.config.algorithm, sweep.max_epochs, sweep.config.algorithm.max_trials)
        self.slots = machine_slots(sweep.config)
        verb = "resuming" if sweep.resumed else "starting"
        self.console.print(f"[bold]{verb} sweep {sweep.config.name}[/] ({sweep.config.algorithm.name} on "
                           f"{sweep.config.backend}, {sweep.config.algorithm.max_trials} trials, metric {sweep.metric} "
                           f"{sweep.direction}) in {sweep.workspace.root}")
        if self.use_live:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.start()

    def trial_started(self, trial_record: TrialRecord) -> None:
        self.records[trial_record.trial_id] = trial_record
        if self._live is None:
            self.console.print(f"{trial_record.trial_id} started {json.dumps(trial_record.params)}")
        self._refresh()

    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        self.records[trial_record.trial_id] = trial_record
        if self._live is None:
            value = report.get("kpi", {}).get(self.metric)
            eta = self._title(*self._observed())
            self.console.print(f"{trial_record.trial_id} epoch {report['epoch']}: {self.metric}={_fmt(value)}"
                               + (f" ({eta})" if eta else ""))
        self._refresh()

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self.records[trial_record.trial_id] = trial_record
        if self._live is None:
            why = ""
            if trial_record.state == FAILED:
                first_line = trial_record.failure_reason.splitlines()[0] if trial_record.failure_reason else ""
                why = f" [{trial_record.failure_class}] {first_line}"
            self.console.print(f"{trial_record.trial_id} {trial_record.state} after {trial_record.epochs_trained()} epochs"
                               f" (best {self.metric}={_fmt(trial_record.best_value())}){why}")
        self._refresh()

    def sweep_finished(self, summary: Mapping[str, Any]) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
        render_outcome(summary, self.console, sweep_dir=self.trials_dir.parent if self.trials_dir else None)


def render_plots(sweep_dir: Path, console: Console) -> None:
    """One line naming the plots drawn (and what the compared ones were computed on), one per plot skipped."""
    from hpo.tracking.plots import read_plot_set

    plots = read_plot_set(sweep_dir / "plots")
    if not plots:
        return
    if plots.get("drawn"):
        basis = f"; parameters compared on {plots['compared_on']}" if plots.get("compared_on") else ""
        console.print(f"plots: {', '.join(plots['drawn'])} in {plots['folder']}/{basis}")
    for name, reason in (plots.get("skipped") or {}).items():
        console.print(f"plot {name} not drawn: {reason}")


def render_outcome(summary: Mapping[str, Any], console: Console, *, sweep_dir: Path | None = None) -> None:
    counts = ", ".join(f"{count} {state.lower()}" for state, count in sorted((summary.get("counts") or {}).items()))
    console.print(f"[bold]sweep {summary['sweep']} {summary.get('status')}[/]: {counts or 'no trials'}")
    if summary.get("message"):
        console.print(summary["message"])
    best = summary.get("best")
    if best:
        console.print(f"[bold green]best[/]: {best['trial_id']} epoch {best['epoch']} {summary['metric']}="
                      f"{best['metric']:.4f} checkpoint {best.get('checkpoint')}")
        console.print(f"      params {json.dumps(best.get('params', {}))}")
    comparison = summary.get("default_vs_best")
    if comparison:
        console.print(default_vs_best_line(comparison, summary["metric"]))
    test = summary.get("test") or {}
    if test.get("top_k"):
        rows = "; ".join(f"#{s['rank']} {s['trial_id']}@{s['epoch']} selection {_score(s.get('selection'))} "
                         f"test {_score(s.get('test'))}" for s in test["top_k"])
        console.print(f"[bold]held-out test[/] ({test.get('dataset')}, champion by {test.get('champion_rule')} score): {rows}")
    elif test.get("note"):
        console.print(f"final score: {test['note']}")
    baseline = summary.get("baseline")
    if baseline:
        if baseline.get("status") == "ok":
            gain = f" (best is {best['metric'] - baseline['metric']:+.4f})" if best else ""
            console.print(f"baseline {summary['metric']}={baseline['metric']:.4f} from {baseline['checkpoint']}{gain}")
        else:
            console.print(f"[yellow]baseline evaluation failed[/]: {(baseline.get('failure_reason') or '').splitlines()[0]}")
    if sweep_dir is not None:
        render_plots(sweep_dir, console)


def _score(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"

"""What a person watching a sweep sees: a live rich table in a terminal (trial, state, epoch, metric, best so
far, ETA), one log line per event otherwise (CI logs), and the same table for `hpo status` from another
terminal, built from the trial.json files.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hpo import selection
from hpo.sweep.observer import SweepObserver
from hpo.trials.record import FAILED, RUNNING, TrialRecord
from skillkit.status import STATUS_FILE, StatusLine

STATE_STYLE = {"RUNNING": "cyan", "COMPLETED": "green", "PRUNED": "yellow", "PAUSED": "magenta", "FAILED": "red"}


def last_status_line(trial_dir: Path) -> StatusLine | None:
    """The trainer's newest status.json line (read from the file's tail): the ETA of a running trial moves
    with every epoch, while its record only changes at validations."""
    path = trial_dir / STATUS_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = handle.read().splitlines()
    except OSError:
        return None
    for raw in reversed(lines):
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue
        line = StatusLine.from_record(event) if isinstance(event, dict) else None
        if line is not None:
            return line
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def trials_table(records: Iterable[TrialRecord], *, metric: str, direction: str, max_epochs: int | None,
                 trials_dir: Path | None = None, title: str | None = None) -> Table:
    records = sorted(records, key=lambda r: r.number)
    table = Table(title=title, title_justify="left")
    for column in ("trial", "state", "epoch", metric, "trial best", "best so far", "ETA"):
        table.add_column(column, justify="right" if column not in ("trial", "state") else "left")
    running_best: float | None = None
    for record in records:
        values = record.metric_values()
        last = values[-1][1] if values else None
        # "best so far" follows every trial that has not failed, running ones included (what a person watching
        # wants to see); the sweep's best, in summary.json and promotion, counts completed trials only.
        if record.state != FAILED and selection.better(record.best_value(), running_best, direction):
            running_best = record.best_value()
        eta = None
        if record.state == RUNNING and trials_dir is not None:
            line = last_status_line(trials_dir / record.trial_id)
            eta = line.eta if line else None
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

    def _render(self) -> Table:
        return trials_table(self.records.values(), metric=self.metric, direction=self.direction,
                            max_epochs=self.max_epochs, trials_dir=self.trials_dir)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def sweep_started(self, sweep: Any) -> None:
        self.metric, self.direction, self.max_epochs = sweep.metric, sweep.direction, sweep.max_epochs
        self.trials_dir = sweep.workspace.trials_dir
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
            self.console.print(f"{trial_record.trial_id} epoch {report['epoch']}: {self.metric}={_fmt(value)}")
        self._refresh()

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self.records[trial_record.trial_id] = trial_record
        if self._live is None:
            why = f" [{trial_record.failure_class}] {(trial_record.failure_reason or '').splitlines()[0] if trial_record.failure_reason else ''}" if trial_record.state == FAILED else ""
            self.console.print(f"{trial_record.trial_id} {trial_record.state} after {trial_record.epochs_trained()} epochs"
                               f" (best {self.metric}={_fmt(trial_record.best_value())}){why}")
        self._refresh()

    def sweep_finished(self, summary: Mapping[str, Any]) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
        render_outcome(summary, self.console)


def render_outcome(summary: Mapping[str, Any], console: Console) -> None:
    counts = ", ".join(f"{count} {state.lower()}" for state, count in sorted((summary.get("counts") or {}).items()))
    console.print(f"[bold]sweep {summary['sweep']} {summary.get('status')}[/]: {counts or 'no trials'}")
    if summary.get("message"):
        console.print(summary["message"])
    best = summary.get("best")
    if best:
        console.print(f"[bold green]best[/]: {best['trial_id']} epoch {best['epoch']} {summary['metric']}="
                      f"{best['metric']:.4f} checkpoint {best.get('checkpoint')}")
        console.print(f"      params {json.dumps(best.get('params', {}))}")
    baseline = summary.get("baseline")
    if baseline:
        if baseline.get("status") == "ok":
            gain = f" (best is {best['metric'] - baseline['metric']:+.4f})" if best else ""
            console.print(f"baseline {summary['metric']}={baseline['metric']:.4f} from {baseline['checkpoint']}{gain}")
        else:
            console.print(f"[yellow]baseline evaluation failed[/]: {(baseline.get('failure_reason') or '').splitlines()[0]}")

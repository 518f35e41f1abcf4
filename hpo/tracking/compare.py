"""`hpo compare`: one table across sweeps, read from workspaces or from MLflow experiments.

A target that is a folder is read from its files (every sweep folder in it); any other target is an MLflow
experiment name on the given tracking URI (any store: SQLite file, server, ...), where each parent run
(`hpo.run_kind = sweep`) is one sweep and its child runs are its trials. Both paths produce the same row,
so a table can mix local workspaces and a team's tracking server. `best` is the selection (validation) score
of the promoted trial; `test` its score on the held-out test dataset, when the sweep had one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo import selection
from hpo.tracking import sweep_files
from hpo.tracking.summary import best_of, sweep_stats
from skillkit.errors import StorageError
from skillkit.files import BEST_DIR, BEST_FILE

COLUMNS = ("sweep", "source", "algorithm", "backend", "metric", "direction", "best", "best_trial", "best_epoch",
           "trials", "completed", "pruned", "failed", "gpu_hours", "best_params", "test", "final_source")


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One sweep's line in the comparison."""

    sweep: str
    source: str
    algorithm: str | None
    backend: str | None
    metric: str
    direction: str
    best: float | None
    best_trial: str | None
    best_epoch: int | None
    trials: int
    completed: int
    pruned: int
    failed: int
    gpu_hours: float
    best_params: Mapping[str, Any]
    test: float | None = None  # the promoted trial's score on the held-out test dataset (`best` is its selection score)
    final_source: str = "selection"  # which of the two is the sweep's final score

    def as_csv(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["best_params"] = json.dumps(dict(self.best_params), sort_keys=True, default=str)
        row["gpu_hours"] = round(self.gpu_hours, 4)
        return row


def compare(targets: Sequence[str], *, tracking_uri: str | None = None) -> list[SweepRow]:
    """Rows for every sweep named by `targets` (folders or experiment names), in the order given."""
    rows: list[SweepRow] = []
    client = None
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found = sweep_files.sweep_dirs_under(path)
            if not found:
                raise StorageError(f"'{target}' is a folder but holds no sweep (no sweep.yaml or summary.json in it "
                                   "or in the folders directly below it).")
            rows.extend(rows_from_sweep_dir(sweep_dir) for sweep_dir in found)
            continue
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise StorageError(
                f"'{target}' is not a folder, so it must be an MLflow experiment name; give the store with "
                "--tracking-uri (or MLFLOW_TRACKING_URI)."
            )
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri)
        rows.extend(rows_from_experiment(client, target, uri))
    return rows


def rows_from_sweep_dir(sweep_dir: Path) -> SweepRow:
    config = sweep_files.load_config(sweep_dir)
    summary = sweep_files.load_summary(sweep_dir, config)
    metric, direction = str(summary["metric"]), str(summary["direction"])
    stats = sweep_stats(summary["trials"])
    best = best_of(summary, sweep_dir, metric, direction)
    return SweepRow(
        sweep=str(summary.get("sweep") or sweep_dir.name), source=str(sweep_dir),
        algorithm=summary.get("algorithm"), backend=summary.get("backend"), metric=metric, direction=direction,
        best=best["metric"] if best else None, best_trial=best["trial_id"] if best else None,
        best_epoch=best["epoch"] if best else None, trials=stats.trials, completed=stats.completed,
        pruned=stats.pruned + stats.paused, failed=stats.failed, gpu_hours=stats.gpu_hours,
        best_params=best["params"] if best else {}, **_test_score(sweep_dir),
    )


def _test_score(sweep_dir: Path) -> dict[str, Any]:
    """The promoted trial's test score and the final score's source, from best/best.json's `scores`."""
    path = sweep_dir / BEST_DIR / BEST_FILE
    scores = (json.loads(path.read_text()).get("scores") or {}) if path.is_file() else {}
    return {"test": scores.get("test"), "final_source": scores.get("final_source") or "selection"}


def rows_from_experiment(client: Any, name: str, uri: str) -> list[SweepRow]:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise StorageError(f"MLflow experiment '{name}' does not exist on {uri}.")
    parents = _search(client, experiment.experiment_id, "tags.`hpo.run_kind` = 'sweep'")
    if not parents:
        raise StorageError(f"MLflow experiment '{name}' on {uri} holds no sweep run (no run tagged hpo.run_kind=sweep).")
    return [_row_from_runs(client, experiment.experiment_id, parent, uri) for parent in parents]


def _search(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def _row_from_runs(client: Any, experiment_id: str, parent: Any, uri: str) -> SweepRow:
    tags = parent.data.tags
    metric = tags.get("metric") or sweep_files.DEFAULT_METRIC
    direction = tags.get("direction") or "maximize"
    children = _search(client, experiment_id, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    states = [_state_of(child.info.status, child.data.tags) for child in children]
    best_value = parent.data.metrics.get(f"best_{metric}")
    best_trial = tags.get("hpo.best_trial_id")
    best_params = {key[len("best.param."):]: _parse(value) for key, value in tags.items() if key.startswith("best.param.")}
    if best_value is None:
        best_child = _best_child(children, metric, direction)
        if best_child is not None:
            best_value = best_child.data.metrics.get(f"best_{metric}", best_child.data.metrics.get(metric))
            best_trial = best_child.data.tags.get("hpo.trial_id")
            best_params = {key: _parse(value) for key, value in best_child.data.params.items()}
    gpu_hours = parent.data.metrics.get("gpu_hours")
    if gpu_hours is None:
        gpu_hours = sum(child.data.metrics.get("gpu_hours", 0.0) for child in children)
    best_epoch = tags.get("hpo.best_epoch")
    return SweepRow(
        sweep=tags.get("hpo.sweep") or parent.info.run_name, source=f"{uri} (run {parent.info.run_id})",
        algorithm=tags.get("algorithm"), backend=tags.get("backend"), metric=metric, direction=direction,
        best=best_value, best_trial=best_trial, best_epoch=int(best_epoch) if best_epoch else None,
        trials=len(children), completed=states.count("COMPLETED"), pruned=states.count("PRUNED") + states.count("PAUSED"),
        failed=states.count("FAILED"), gpu_hours=float(gpu_hours), best_params=best_params,
        test=parent.data.metrics.get(f"test_{metric}"), final_source=tags.get("hpo.final_score_source") or "selection",
    )


def _state_of(status: str, tags: Mapping[str, str] | None = None) -> str:
    """A trial's state from its run: the `hpo.state` tag, else the status (a FINISHED run tagged `pruned` was
    pruned; KILLED was written for pruned trials by older versions)."""
    if (tags or {}).get("hpo.state"):
        return str((tags or {})["hpo.state"])
    if status == "FINISHED" and (tags or {}).get("pruned") == "true":
        return "PRUNED"
    return {"FINISHED": "COMPLETED", "KILLED": "PRUNED", "FAILED": "FAILED"}.get(status, "RUNNING")


def _best_child(children: Iterable[Any], metric: str, direction: str) -> Any:
    """The best completed trial run by `hpo.selection`'s rule (NaN never best; lowest trial number on a tie)."""
    def value(child: Any) -> float | None:
        metrics = child.data.metrics
        return selection.metric_value({metric: metrics.get(f"best_{metric}", metrics.get(metric))}, metric)

    def number(child: Any) -> int:
        text = str(child.data.tags.get("hpo.trial_number", ""))
        return int(text) if text.isdigit() else 1 << 30  # runs from before the tag existed: after numbered ones

    return selection.best_trial(children, best_value=value, number=number, direction=direction,
                                state=lambda child: _state_of(child.info.status, child.data.tags))


def _parse(value: str) -> Any:
    """MLflow stores params/tags as text; numbers and JSON lists read back as what they were."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


def write_csv(rows: Sequence[SweepRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_csv())
    return path


def render_table(rows: Sequence[SweepRow]) -> Any:
    """A rich Table of the rows (best value bold in each direction group of equal metrics)."""
    from rich.table import Table

    table = Table(title="Sweep comparison", show_lines=False)
    right_aligned = {"best", "test", "trials", "pruned", "failed", "GPU-h"}
    for column in ("sweep", "algorithm", "backend", "metric", "best", "test", "best trial/epoch", "trials", "pruned",
                   "failed", "GPU-h", "best params"):
        table.add_column(column, justify="right" if column in right_aligned else "left", overflow="fold")
    winners = _winners(rows)
    for index, row in enumerate(rows):
        best = "-" if row.best is None else f"{row.best:.4f}"
        if index in winners:
            best = f"[bold green]{best}[/]"
        where = "-" if row.best_trial is None else f"{row.best_trial}@{row.best_epoch}"
        params = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in sorted(row.best_params.items())) or "-"
        test = "-" if row.test is None else f"{row.test:.4f}"
        table.add_row(row.sweep, row.algorithm or "-", row.backend or "-", f"{row.metric} ({row.direction[:3]})", best,
                      test, where, str(row.trials), str(row.pruned), str(row.failed), f"{row.gpu_hours:.2f}", params)
    return table


def _winners(rows: Sequence[SweepRow]) -> set[int]:
    groups: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(rows):
        if row.best is not None:
            groups.setdefault((row.metric, row.direction), []).append(index)
    winners = set()
    for (_metric, direction), indices in groups.items():
        winner = selection.best_of(indices, lambda i: rows[i].best, direction)  # NaN never bold; first on a tie
        if winner is not None:
            winners.add(winner)
    return winners


def _short(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else name


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

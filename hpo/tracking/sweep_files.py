"""Read a sweep folder the way the engine writes it (contracts: sweep.yaml, summary.json, trials/*/trial.json).

Tracking, comparison and promotion only ever look at a sweep through these files, so they work the same
for a live sweep, a finished one, a resumed one, and a synthetic one built by a test.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from skillkit.errors import StorageError, SweepConfigError
from skillkit.files import SPACE_FILE, SUMMARY_FILE, SWEEP_FILE, TRIAL_FILE, TRIALS_DIR

TERMINAL_STATES = ("COMPLETED", "PRUNED", "FAILED")
DEFAULT_METRIC = "mIoU"


def as_dict(record: Any) -> dict[str, Any]:
    """A plain dict from a trial record / summary given as a dict, a dataclass or an object with to_dict()."""
    if record is None:
        return {}
    if isinstance(record, Mapping):
        return dict(record)
    for method in ("to_dict", "as_dict", "to_json_dict"):
        if callable(getattr(record, method, None)):
            return dict(getattr(record, method)())
    import dataclasses

    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    if hasattr(record, "__dict__"):
        return {key: value for key, value in vars(record).items() if not key.startswith("_")}
    raise TypeError(f"cannot read a record of type {type(record).__name__}")


def find_sweep_dir(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """The sweep folder PATH names: PATH itself (it holds sweep.yaml or summary.json), else its only sweep."""
    path = Path(path)
    if _is_sweep_dir(path):
        return path.resolve()
    if name and _is_sweep_dir(path / name):
        return (path / name).resolve()
    if not path.is_dir():
        raise StorageError(f"'{path}' is neither a sweep folder (with {SWEEP_FILE} or {SUMMARY_FILE}) nor a workspace folder.")
    sweeps = sweep_dirs_under(path)
    if not sweeps:
        raise StorageError(f"'{path}' holds no sweep: no {SWEEP_FILE} or {SUMMARY_FILE} in it or in any folder below it.")
    if len(sweeps) > 1:
        names = ", ".join(p.name for p in sweeps)
        raise StorageError(f"workspace '{path}' holds several sweeps ({names}); name one as {path}/<sweep>.")
    return sweeps[0]


def sweep_dirs_under(path: Path) -> list[Path]:
    """PATH itself when it is a sweep folder, else every sweep folder directly below it."""
    if _is_sweep_dir(path):
        return [path.resolve()]
    if not path.is_dir():
        return []
    return sorted(child.resolve() for child in path.iterdir() if child.is_dir() and _is_sweep_dir(child))


def _is_sweep_dir(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file() or (path / SUMMARY_FILE).is_file()


def load_config(sweep_dir: Path) -> dict[str, Any]:
    """The resolved sweep config (sweep.yaml); empty when the folder has none."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SweepConfigError(f"'{path}' is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SweepConfigError(f"'{path}' must hold a mapping, got {type(data).__name__}.")
    return data


def load_space(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / SPACE_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else None


def load_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every trials/<id>/trial.json, ordered by trial number."""
    trials_dir = Path(sweep_dir) / TRIALS_DIR
    records = []
    if trials_dir.is_dir():
        for path in sorted(trials_dir.glob(f"*/{TRIAL_FILE}")):
            try:
                records.append(json.loads(path.read_text()))
            except json.JSONDecodeError as error:
                raise StorageError(f"trial record '{path}' is not valid JSON: {error.msg}.") from None
    return sorted(records, key=lambda record: (record.get("number", 0), str(record.get("trial_id"))))


def load_summary(sweep_dir: Path, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """summary.json, with each trial refreshed from its trial.json when that one is newer in content.

    Without summary.json (a sweep killed before writing it) the summary is rebuilt from the trial files and
    the sweep config.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / SUMMARY_FILE
    summary: dict[str, Any] = {}
    if path.is_file():
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise StorageError(f"sweep summary '{path}' is not valid JSON: {error.msg}.") from None
    config = config if config is not None else load_config(sweep_dir)
    by_id = {str(trial.get("trial_id")): trial for trial in summary.get("trials") or []}
    for record in load_trials(sweep_dir):
        known = by_id.get(str(record.get("trial_id")))
        if known is None or len(record.get("history") or []) >= len(known.get("history") or []):
            by_id[str(record.get("trial_id"))] = record
    summary["trials"] = sorted(by_id.values(), key=lambda t: (t.get("number", 0), str(t.get("trial_id"))))
    summary.setdefault("sweep", config.get("name") or sweep_dir.name)
    summary.setdefault("metric", resolve_metric(config))
    summary.setdefault("direction", resolve_direction(config, summary["metric"]))
    summary.setdefault("algorithm", _algorithm_name(config))
    summary.setdefault("backend", config.get("backend"))
    summary.setdefault("best", None)
    summary.setdefault("baseline", None)
    return summary


def resolve_metric(config: Mapping[str, Any]) -> str:
    """The metric name a sweep optimises; `kpi` (or nothing) is the skill's monitoring metric."""
    metric = config.get("metric") or "kpi"
    if metric != "kpi":
        return str(metric)
    skill_dir = config.get("skill_dir")
    if skill_dir:
        info = Path(skill_dir) / "references" / "skill_info.yaml"
        if info.is_file():
            data = yaml.safe_load(info.read_text()) or {}
            return str(data.get("monitoring_metric") or DEFAULT_METRIC)
    return DEFAULT_METRIC


def resolve_direction(config: Mapping[str, Any], metric: str) -> str:
    direction = config.get("direction")
    if direction in ("maximize", "minimize"):
        return str(direction)
    return "minimize" if "loss" in metric.lower() else "maximize"


def _algorithm_name(config: Mapping[str, Any]) -> str | None:
    algorithm = config.get("algorithm")
    if isinstance(algorithm, Mapping):
        return algorithm.get("name")
    return algorithm


def skill_name(config: Mapping[str, Any]) -> str:
    """The skill's name from its skill_info.yaml (e.g. tao-train-mask2former), else its folder name."""
    skill_dir = config.get("skill_dir")
    if not skill_dir:
        return "unknown"
    info = Path(skill_dir) / "references" / "skill_info.yaml"
    if info.is_file():
        data = yaml.safe_load(info.read_text()) or {}
        if data.get("name"):
            return str(data["name"])
    return Path(skill_dir).name


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an ISO-8601 string (naive = local time) or a number; None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def gpu_count(resources: Mapping[str, Any] | None) -> float:
    """GPUs a trial held, from its `resources` record (fractional GPUs count as their fraction)."""
    for key in ("gpus", "gpus_per_trial", "gpu", "num_gpus"):
        value = (resources or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, (list, tuple)):
            return float(len(value))
    return 0.0


def trial_hours(trial: Mapping[str, Any], *, now: float | None = None) -> float:
    """Wall-clock hours a trial ran (to now when it has not ended)."""
    start = parse_time(trial.get("started_at"))
    if start is None:
        return 0.0
    end = parse_time(trial.get("ended_at"))
    if end is None:
        import time

        end = now if now is not None else time.time()
    return max(0.0, end - start) / 3600.0


def gpu_hours(trial: Mapping[str, Any]) -> float:
    return gpu_count(trial.get("resources")) * trial_hours(trial)

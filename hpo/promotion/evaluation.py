"""Final evaluation of a promoted checkpoint: the skill's own `evaluate` command on the eval dataset.

The engine does not import the trainer, so evaluation is the command from `references/skill_info.yaml`
(`mask2former evaluate -e {config_path}`) run as a subprocess on `best/evaluate_spec.yaml`; its result is
read back from the `status.json` the command writes into its results_dir (the same contract as training:
the last line whose `kpi` holds the metric). The runner is a plain callable so tests (and other skills) can
inject their own.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo.selection import metric_value
from skillkit.errors import SchemaError
from skillkit.status import STATUS_FILE, read_lines


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation produced; `value` is None when the command failed or reported no metric."""

    metric: str
    value: float | None
    kpi: Mapping[str, Any]
    returncode: int
    command: tuple[str, ...]
    log: Path | None
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "kpi": dict(self.kpi), "returncode": self.returncode,
                "command": list(self.command), "log": str(self.log) if self.log else None,
                "seconds": round(self.seconds, 3), "error": self.error}


# (spec file, results dir, metric name) -> result
EvaluationRunner = Callable[[Path, Path, str], EvaluationResult]


class SkillEvaluator:
    """Runs the skill's evaluate action as a subprocess and reads the metric from its status.json."""

    def __init__(self, skill_dir: str | os.PathLike[str] | None = None, *, timeout_s: float | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        from skillkit.skill_dir import SkillDir

        self.skill = SkillDir(skill_dir)
        self.timeout_s = timeout_s
        self.env = dict(env or {})

    def command(self, spec_path: Path, action: str = "evaluate") -> list[str]:
        command = self.skill.command(action, spec_path)
        if shutil.which(command[0]) is None:
            beside = Path(sys.executable).parent / command[0]  # console scripts of the running environment
            if beside.is_file():
                command[0] = str(beside)
        return command

    def run_action(self, action: str, spec_path: Path, log: Path) -> tuple[int, str | None, tuple[str, ...]]:
        """Run the skill's `action` on `spec_path`, output into `log`: (return code, error or None, argv)."""
        try:
            command = self.command(spec_path, action)
        except SchemaError as error:
            return 2, f"the skill cannot {action}: {error}", ()
        return self.run_argv(command, log, action)

    def run_argv(self, command: list[str], log: Path, what: str) -> tuple[int, str | None, tuple[str, ...]]:
        """Run a skill command (console scripts of this environment found as in `command`), output into `log`."""
        if command and shutil.which(command[0]) is None:
            beside = Path(sys.executable).parent / command[0]
            if beside.is_file():
                command = [str(beside), *command[1:]]
        action = what
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(log, "wb") as handle:
            try:
                process = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                         timeout=self.timeout_s, check=False)
                returncode, error = process.returncode, None
            except subprocess.TimeoutExpired:
                returncode, error = 124, f"{action} did not finish within {self.timeout_s} s"
            except OSError as failure:
                returncode, error = 127, f"cannot run {command[0]!r}: {failure}"
        if error is None and returncode != 0:
            error = f"'{' '.join(command)}' exited with code {returncode}; see {log}"
        return returncode, error, tuple(command)

    def __call__(self, spec_path: Path, results_dir: Path, metric: str) -> EvaluationResult:
        results_dir.mkdir(parents=True, exist_ok=True)
        status = results_dir / STATUS_FILE
        if status.exists():
            status.unlink()  # a result from an earlier promotion must not be read as this one's
        started = time.monotonic()
        log = results_dir / "evaluate.log"
        returncode, error, command = self.run_action("evaluate", spec_path, log)
        if not command:
            return EvaluationResult(metric, None, {}, returncode, (), None, 0.0, error)
        kpi = read_result_kpi(status, metric)
        value = metric_value(kpi, metric)
        if error is None and value is None:
            error = f"the evaluation wrote no '{metric}' into {status}"
        return EvaluationResult(metric, value, kpi, returncode, tuple(command), log, time.monotonic() - started, error)


def read_result_kpi(status: Path, metric: str) -> dict[str, Any]:
    """The `kpi` of the last status line that reports `metric` (empty when none does)."""
    found: dict[str, Any] = {}
    for line in read_lines(status):
        if metric in line.kpi:
            found = dict(line.kpi)
    return found


def baseline_value(baseline: Any, metric: str) -> float | None:
    """The baseline's metric from summary.json's `baseline` record, whichever way the engine recorded it."""
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return float(baseline)
    if not isinstance(baseline, Mapping):
        return None
    for candidate in (baseline.get("kpi"), baseline):
        value = metric_value(candidate, metric) if isinstance(candidate, Mapping) else None
        if value is not None:
            return value
    for key in ("metric", "value"):
        value = baseline.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None

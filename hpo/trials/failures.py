"""Why a trial failed, from what the trainer process left behind: its exit code, its last status.json
FAILURE line, whether the engine itself stopped it (timeout) and the tail of its log.

The trainer contract (DESIGN.md §3): OOM exits 10 with error_class "oom", data errors exit 6, spec
errors exit 3 (skillkit.errors exit codes), other failures exit 1 with "internal". A process killed by a
signal the engine did not send (the OOM killer's SIGKILL, a user's kill) is "killed".
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from skillkit.errors import ExitCode
from skillkit.states import ErrorClass
from skillkit.status import StatusLine

# What a trainer that died without a FAILURE line meant by its exit code (skillkit.errors' table).
EXIT_CODE_CLASSES: dict[int, str] = {ExitCode.OUT_OF_MEMORY: "oom", ExitCode.DATA: "data", ExitCode.SPEC: "spec",
                     ExitCode.USER: "spec"}


@dataclass(frozen=True)
class Failure:
    failure_class: str
    reason: str


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def log_tail(path: Path, lines: int = 12, max_chars: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-max_chars:]


def classify_failure(
    *,
    exit_code: int | None,
    failure_line: StatusLine | None,
    timed_out: bool,
    stopped_by_engine: bool,
    reported_any: bool,
    log_path: Path | None = None,
) -> Failure | None:
    """The failure of a finished trainer process, or None when it ended well.

    A clean exit (0) is a failure only when nothing was ever reported (the sweep's metric never appeared).
    A process the engine stopped (prune/pause) that exits 0 or by our SIGKILL after the grace period is fine
    unless it wrote a FAILURE line first.
    """
    tail = log_tail(log_path) if log_path else ""
    where = f"; last log lines:\n{tail}" if tail else ""
    if timed_out:
        return Failure("timeout", "the trial exceeded trial.timeout_s and was stopped" + where)
    if failure_line is not None:
        klass = (failure_line.error_class or ErrorClass.INTERNAL).value
        message = failure_line.message.strip() or "the trainer reported FAILURE without a message"
        return Failure(klass, message)
    if exit_code == 0:
        if reported_any or stopped_by_engine:
            return None
        return Failure("internal", "the trainer exited 0 without reporting the sweep's metric in any status.json validation" + where)
    if exit_code is None:
        return Failure("killed", "the trainer process disappeared without an exit status" + where)
    if exit_code < 0:
        if stopped_by_engine:
            return None
        return Failure("killed", f"the trainer was killed by {_signal_name(-exit_code)} (not sent by the engine)" + where)
    if exit_code in (128 + signal.SIGKILL, 128 + signal.SIGTERM) and not stopped_by_engine:
        return Failure("killed", f"the trainer exited {exit_code} ({_signal_name(exit_code - 128)})" + where)
    klass = EXIT_CODE_CLASSES.get(exit_code, "internal")
    return Failure(klass, f"the trainer exited with code {exit_code}" + where)

"""The states both sides name, as enums: a trainer run's status line states and an engine trial's states.

Members are `str` subclasses whose value is the contract's spelling, so they compare equal to the strings
in status.json and trial.json, serialise to them with `json`, and format as them in messages.
"""

from __future__ import annotations

from enum import Enum


class _Named(str, Enum):
    """A string enum that prints as its value (Python 3.11 would otherwise print `Class.MEMBER`)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RunStatus(_Named):
    """`status` of a status.json line. TAO also knows SKIPPED (a step it did not run)."""

    STARTED = "STARTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"


class Verbosity(_Named):
    """`verbosity` of a status.json line (TAO's level names)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class ErrorClass(_Named):
    """`error_class` of a FAILURE line: what the trainer says went wrong."""

    OOM = "oom"
    DATA = "data"
    SPEC = "spec"
    INTERNAL = "internal"


class FailureClass(_Named):
    """Why the engine counts a trial run as failed: the trainer's classes plus what only the engine sees."""

    OOM = "oom"
    DATA = "data"
    SPEC = "spec"
    KILLED = "killed"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class TrialState(_Named):
    """State of an engine trial (trial.json `state`)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PRUNED = "PRUNED"
    PAUSED = "PAUSED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        """The trial will not run again (a paused one may)."""
        return self in (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED)

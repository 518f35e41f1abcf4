"""`status.json`, a run's progress log: the line format, the trainer's writer and the engine's follower."""

from skillkit.status.follower import StatusFollower, Validation, read_lines, read_validations, validation_of
from skillkit.status.format import STATUS_FILE, StatusLine
from skillkit.status.writer import StatusWriter, read_status

__all__ = [
    "STATUS_FILE", "StatusFollower", "StatusLine", "StatusWriter", "Validation", "read_lines", "read_status",
    "read_validations", "validation_of",
]

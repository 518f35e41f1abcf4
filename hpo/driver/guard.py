"""When a sweep must stop before its trial budget is spent, and the sentence that says why.

Three reasons, checked by both backends after every finished trial and in their scheduling loops:
- every trial so far failed, `trial.max_consecutive_failures` times in a row, and no trial still running
  has reported a validation (nothing would ever succeed: a broken dataset, a command that does not exist, a
  spec the trainer rejects; a slow trial that trains fine while fast ones fail keeps the sweep going) — or
  one `data` failure, since all trials share the data;
- the driver run's `algorithm.time_budget_s` is spent;
- the user interrupted the driver (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from hpo.trials.record import COMPLETED, FAILED, PRUNED, TrialRecord

ALL_FAILED = "all_failed"
TIME_BUDGET = "time_budget"
INTERRUPTED = "interrupted"


class SweepGuard:
    def __init__(self, *, max_consecutive_failures: int, time_budget_s: float | None,
                 resume_command: str = "hpo resume") -> None:
        self.max_consecutive_failures = max_consecutive_failures
        self.resume_command = resume_command
        self.time_budget_s = time_budget_s
        self.deadline: float | None = None
        self.successes = 0
        self.consecutive_failures = 0
        self.failures: list[TrialRecord] = []
        self.reporting: set[str] = set()  # running trials that have reported a validation
        self.reason: str | None = None
        self.message: str | None = None
        self._lock = threading.Lock()

    def start_clock(self) -> None:
        """The time budget counts from the first trial's start (backends call this; later calls keep the
        first deadline), not from the driver's set-up or Ray's start-up."""
        if self.time_budget_s and self.deadline is None:
            self.deadline = time.monotonic() + self.time_budget_s

    def seed_history(self, records: list[TrialRecord]) -> None:
        """Count the trials of earlier driver runs (a resumed sweep keeps its failure streak)."""
        for record in sorted(records, key=lambda r: r.number):
            if record.state in (COMPLETED, PRUNED, FAILED):
                self.trial_finished(record)
        # A resumed sweep gets its chance (the user may have fixed the data): the next failure decides.
        self.reason = self.message = None

    def trial_reported(self, trial_id: str) -> None:
        with self._lock:
            self.reporting.add(trial_id)

    def trial_finished(self, record: TrialRecord) -> None:
        with self._lock:
            self.reporting.discard(record.trial_id)
            if record.state in (COMPLETED, PRUNED):
                self.successes += 1
                self.consecutive_failures = 0
                return
            if record.state != FAILED:
                return
            self.failures.append(record)
            self.consecutive_failures += 1
            if self.reason is not None:
                return
            if record.failure_class == "data":
                self._stop(ALL_FAILED, self._describe("a trial failed on the dataset, which every trial shares"))
            elif not self.successes and not self.reporting and self.consecutive_failures >= self.max_consecutive_failures:
                self._stop(ALL_FAILED, self._describe(
                    f"all {self.consecutive_failures} trials so far failed (trial.max_consecutive_failures = "
                    f"{self.max_consecutive_failures})"))

    def _describe(self, lead: str) -> str:
        classes = Counter(record.failure_class for record in self.failures)
        summary = ", ".join(f"{count} {klass}" for klass, count in classes.most_common())
        last = self.failures[-1]
        reason = (last.failure_reason or "").strip().splitlines()
        first_line = reason[0] if reason else "no reason recorded"
        return (f"the sweep stopped early: {lead} ({summary}); last failure, {last.trial_id} "
                f"[{last.failure_class}]: {first_line}. See trials/{last.trial_id}/train.log.")

    def _stop(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message

    def interrupt(self) -> None:
        with self._lock:
            if self.reason is None:
                self._stop(INTERRUPTED, f"the sweep was interrupted; running trials were paused. Continue with `{self.resume_command}`.")

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline and self.reason is None:
            with self._lock:
                if self.reason is None:
                    self._stop(TIME_BUDGET, "the time budget (algorithm.time_budget_s) of this driver run is spent; "
                                            f"running trials were paused. Continue with `{self.resume_command}`.")

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    @property
    def stopped(self) -> bool:
        self.check_time()
        return self.reason is not None

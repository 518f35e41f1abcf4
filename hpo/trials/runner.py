"""One run of the skill's train command for one trial, as a subprocess the engine can follow and stop.

Contract with the trainer (DESIGN.md §3): the command gets the trial's spec file; the trainer writes
`status.json` and checkpoints into the trial folder, stops cleanly (checkpoint + status line + exit 0) on
SIGTERM and at `EARLY_STOP_EPOCH`, and resumes from `resume_training_checkpoint_path`.

Who calls what: a backend creates a `TrainerProcess`, calls `start()`, then `poll()` / `next_validation()`
until `ended` (the process exited and every line it wrote was handed out), deciding after each validation whether to let it continue or `stop()` it
(prune / pause). `exit()` then says how it ended. All methods are called from one thread per process.

`freeze()`/`thaw()` (SIGSTOP/SIGCONT) let the Ray backend hold a trainer exactly at a reported epoch while
the scheduler decides, so a paused or exploited trial has trained no further than its last checkpoint.

Every signal goes to the trainer's whole process group (it is started in a session of its own), the way a
batch system such as SLURM signals a job step: SIGSTOP/SIGCONT freeze and thaw the data-loader workers and
every DDP rank with the main process (stopping only the main process left its workers and ranks running,
and a rank blocked in a collective times out), and SIGTERM reaches every rank at once. A trainer must
therefore tolerate SIGTERM in its helper processes (ours: data-loader workers ignore it and ranks agree on
the stop at the next step; see mask2former/training/distributed_stop.py).
Output goes to the trial's own `train.log`; stdin is closed, so a trainer can never block on a prompt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hpo.trials.failures import Failure, classify_failure
from skillkit.files import LOG_FILE, PID_FILE
from skillkit.states import RunStatus
from skillkit.status import STATUS_FILE, StatusFollower, StatusLine, Validation, validation_of


@dataclass(frozen=True)
class TrialLaunch:
    """Everything needed to start the trainer for one trial.

    argv: the skill's train command with the spec path filled in.
    env: variables added to the engine's environment (CUDA_VISIBLE_DEVICES, thread counts, EARLY_STOP_EPOCH).
    timeout_s: wall-clock limit of this run (frozen time excluded); None for no limit.
    stop_grace_s: seconds a trainer gets to checkpoint and exit after SIGTERM before SIGKILL.
    kill_with_parent: the trainer is SIGKILLed when the process that started it dies (Ray actors).
    expected_epochs: how many epochs a clean exit must have trained (the budget or EARLY_STOP_EPOCH, both
        counts); a trainer that exits 0 earlier without being asked to stop is classified 'killed'.
    follow_from_end: ignore status lines written by earlier runs (a resumed trial's status.json grows).
    """

    trial_id: str
    trial_dir: Path
    argv: tuple[str, ...]
    metric: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    stop_grace_s: float = 120.0
    poll_interval_s: float = 0.05
    kill_with_parent: bool = False
    expected_epochs: int | None = None
    follow_from_end: bool = True


@dataclass(frozen=True)
class TrialExit:
    """How one trainer run ended; `last_epoch` is the TAO index of its last validation."""

    exit_code: int | None
    failure: Failure | None
    stopped_by_engine: bool
    timed_out: bool
    succeeded: bool
    last_epoch: int | None


class TrainerProcess:
    def __init__(self, launch: TrialLaunch) -> None:
        self.launch = launch
        self.process: subprocess.Popen[bytes] | None = None
        self._follower = StatusFollower(launch.trial_dir / STATUS_FILE)
        self._queue: deque[Validation] = deque()
        self._failure_line: StatusLine | None = None
        self._succeeded = False
        self._last: Validation | None = None
        self._reported_any = False
        self._stop_requested_at: float | None = None
        self._timed_out = False
        self._frozen_since: float | None = None
        self._frozen_total = 0.0
        self._started_at = 0.0
        self._exit: TrialExit | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        launch = self.launch
        launch.trial_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in launch.env.items()})
        argv = [resolve_executable(launch.argv[0], env.get("PATH")), *launch.argv[1:]]
        setpriv = shutil.which("setpriv")
        if launch.kill_with_parent and setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        if launch.follow_from_end:
            self._follower.skip_existing()
        log = open(launch.trial_dir / LOG_FILE, "ab")
        try:
            self.process = subprocess.Popen(
                argv, cwd=launch.trial_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            log.close()
            self._exit = TrialExit(
                exit_code=None, failure=Failure("spec", f"cannot start the train command {argv!r}: {error}"),
                stopped_by_engine=False, timed_out=False, succeeded=False, last_epoch=None,
            )
            return
        log.close()
        self._started_at = time.monotonic()
        (launch.trial_dir / PID_FILE).write_text(f"{self.process.pid} {process_start_time(self.process.pid)}\n")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- following -----------------------------------------------------------------------------------------
    def _drain(self) -> None:
        now = time.time()
        for line in self._follower.poll():
            if line.status == RunStatus.FAILURE:
                self._failure_line = line
            elif line.status == RunStatus.SUCCESS:
                self._succeeded = True
            validation = validation_of(line, self.launch.metric, now=now)
            if validation is not None:
                self._reported_any = True
                self._last = validation
                self._queue.append(validation)

    def poll(self) -> Validation | None:
        """A validation written since the last call, if any (never waits). Once the process has ended and
        every line it wrote was handed out, `ended` becomes True."""
        self._drain()
        if self._queue:
            return self._queue.popleft()
        if self._exit is not None:
            return None
        if self.process is None or self.process.poll() is not None:
            self._drain()  # lines written just before the exit
            if self._queue:
                return self._queue.popleft()
            self._finish()
            return None
        self._enforce_limits()
        return None

    @property
    def ended(self) -> bool:
        return self._exit is not None

    def next_validation(self) -> Validation | None:
        """The next validation, waiting for it; None once the process has ended (see `exit()`)."""
        while True:
            validation = self.poll()
            if validation is not None or self.ended:
                return validation
            time.sleep(self.launch.poll_interval_s)

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        timeout = self.launch.timeout_s
        if timeout is not None and self._stop_requested_at is None and self._frozen_since is None:
            if now - self._started_at - self._frozen_total > timeout:
                self._timed_out = True
                self.stop()
        if self._stop_requested_at is not None and now - self._stop_requested_at > self.launch.stop_grace_s:
            self.kill()

    # -- control -------------------------------------------------------------------------------------------
    def _signal(self, signum: int) -> None:
        """`signum` to the trainer's whole process group (see the module docstring)."""
        if self.process is not None and self.process.poll() is None:
            signal_group(self.process.pid, signum)

    @property
    def frozen(self) -> bool:
        return self._frozen_since is not None

    def freeze(self) -> None:
        if self._frozen_since is None and self.running():
            self._signal(signal.SIGSTOP)
            self._frozen_since = time.monotonic()

    def thaw(self) -> None:
        if self._frozen_since is not None:
            self._signal(signal.SIGCONT)
            self._frozen_total += time.monotonic() - self._frozen_since
            self._frozen_since = None

    def stop(self) -> None:
        """Ask the trainer to checkpoint and exit (SIGTERM); SIGKILL follows after `stop_grace_s`."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self._signal(signal.SIGTERM)
        self.thaw()

    def kill(self) -> None:
        """SIGKILL the trainer's whole session (a frozen trainer, or one past its grace period)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self._signal(signal.SIGKILL)

    def stop_and_wait(self) -> TrialExit:
        """Stop the trainer and wait for it, discarding nothing it wrote (validations stay queued)."""
        self.stop()
        while self.running():
            self._enforce_limits()
            time.sleep(self.launch.poll_interval_s)
        self._drain()
        return self._finish()

    def wait(self) -> TrialExit:
        """Let the trainer run to its end (validations stay queued for `next_validation`)."""
        while self.running():
            self._drain()
            self._enforce_limits()
            time.sleep(self.launch.poll_interval_s)
        self._drain()
        return self._finish()

    def _finish(self) -> TrialExit:
        if self._exit is not None:
            return self._exit
        code = self.process.wait() if self.process is not None else None
        if self.process is not None:
            # Reap what the trainer left in its session (data-loader workers stuck after a crash).
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        stopped = self._stop_requested_at is not None
        failure = classify_failure(
            exit_code=code, failure_line=self._failure_line, timed_out=self._timed_out, stopped_by_engine=stopped,
            reported_any=self._reported_any or self._succeeded, log_path=self.launch.trial_dir / LOG_FILE,
        )
        expected = self.launch.expected_epochs
        trained = self._last.epochs_trained if self._last is not None else 0
        if failure is None and not stopped and expected is not None and trained < expected:
            failure = Failure(
                "killed",
                f"the trainer exited {code} after {trained} of {expected} epochs without being asked to "
                "stop (an outside SIGTERM?)",
            )
        self._exit = TrialExit(
            exit_code=code, failure=failure, stopped_by_engine=stopped, timed_out=self._timed_out,
            succeeded=self._succeeded and failure is None,
            last_epoch=self._last.epoch if self._last is not None else None,
        )
        (self.launch.trial_dir / PID_FILE).unlink(missing_ok=True)
        return self._exit

    def exit(self) -> TrialExit:
        if self._exit is None:
            raise RuntimeError("exit() before the trainer process ended")
        return self._exit


def signal_group(pid: int, signum: int) -> None:
    """Send `signum` to the process group led by `pid` (the trainer's own session), else to `pid` alone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def resolve_executable(name: str, path: str | None) -> str:
    """`name` on PATH, else the console script of that name beside the running interpreter (an engine run
    from a virtual environment that is not activated still finds the skill's `mask2former` command)."""
    if os.sep in name or shutil.which(name, path=path):
        return name
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else name


# ------------------------------------------------------------------------------------- orphaned trainers


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), to tell a pid from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def stop_orphaned_trainer(trial_dir: Path, *, grace_s: float) -> bool:
    """Stop a trainer left running by a driver that died (its pid file survived it): SIGCONT + SIGTERM, then
    SIGKILL after `grace_s`. Returns True when one was found. Its status.json and checkpoints stay, so the
    resumed driver loses none of what it did meanwhile."""
    pid_file = trial_dir / PID_FILE
    if not pid_file.is_file():
        return False
    try:
        pid_text, _, start = pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return False
    if not start or process_start_time(pid) != start:
        pid_file.unlink(missing_ok=True)
        return False
    for signum in (signal.SIGCONT, signal.SIGTERM):
        signal_group(pid, signum)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and process_start_time(pid) == start:
        if _is_zombie(pid):
            break
        time.sleep(0.05)
    if process_start_time(pid) == start and not _is_zombie(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    pid_file.unlink(missing_ok=True)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True

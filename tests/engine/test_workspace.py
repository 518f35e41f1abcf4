"""The driver lock: two drivers never share a sweep folder; a lock left by a SIGKILLed driver is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.driver.workspace import DriverLock, WorkspaceLockedError, find_sweep_dir, read_lock_holder
from skillkit.errors import SweepConfigError

HOLD = (
    "import sys, time; from pathlib import Path; from hpo.driver.workspace import DriverLock;"
    "lock = DriverLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)"
)


def hold_lock(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_live_driver_keeps_others_out_and_a_killed_one_does_not(tmp_path: Path) -> None:
    lock_file = tmp_path / "sweep" / "driver.lock"
    holder = hold_lock(lock_file)
    try:
        with pytest.raises(WorkspaceLockedError, match=rf"in use by a running driver \(pid {holder.pid} on .*\); two drivers never share"):
            DriverLock(lock_file).acquire()
        assert read_lock_holder(lock_file)["pid"] == holder.pid
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # The kernel dropped the flock with the process; the file still names it: recognised as stale.
    assert read_lock_holder(lock_file) is None
    lock = DriverLock(lock_file).acquire()
    assert lock.stale_holder is not None and lock.stale_holder["pid"] == holder.pid
    lock.release()
    again = DriverLock(lock_file).acquire()
    assert again.stale_holder is None  # a clean release is not stale
    again.release()


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with DriverLock(tmp_path / "driver.lock"):
        with pytest.raises(WorkspaceLockedError):
            DriverLock(tmp_path / "driver.lock").acquire()


def test_find_sweep_dir(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sweep.yaml").write_text("name: a\n")
    assert find_sweep_dir(tmp_path) == tmp_path / "a"
    assert find_sweep_dir(tmp_path / "a") == tmp_path / "a"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "sweep.yaml").write_text("name: b\n")
    with pytest.raises(SweepConfigError, match=r"holds several sweeps \(a, b\); name one"):
        find_sweep_dir(tmp_path)
    assert find_sweep_dir(tmp_path, "b") == tmp_path / "b"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SweepConfigError, match=r"holds no sweep"):
        find_sweep_dir(tmp_path / "empty")
    with pytest.raises(SweepConfigError, match=r"neither a sweep folder"):
        find_sweep_dir(tmp_path / "missing")

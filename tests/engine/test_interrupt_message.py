"""Ctrl-C during `hpo run` says it once: the live view's outcome line (interrupted, trials paused, the exact
resume command), exit code 130, no second `error:` line and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def test_ctrl_c_says_it_once_with_the_resume_command(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    path = write_sweep(algorithm={"name": "random", "max_trials": 4, "max_epochs": 20},
                       spec_overrides={"fixture.sleep_s": 0.3})
    process = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(path), "--yes", "--no-live"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    trials = tmp_path / "ws" / "fx" / "trials"
    deadline = time.monotonic() + 120
    while not any(trials.glob("*/model_epoch_*.pth")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    text = out + err
    assert process.returncode == 130, text
    assert text.count("interrupted") == 1, text
    assert f"Continue with `hpo resume {tmp_path / 'ws' / 'fx'}`" in text
    assert "error:" not in text and "Traceback" not in text

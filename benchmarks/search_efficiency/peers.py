"""Peer algorithms outside our engine and TAO: the `dehb` package (Awad et al., 2021) through its ask/tell
interface, at its defaults (mutation 0.5, crossover 0.5, rand1_bin) with min fidelity 1, max fidelity R and
eta 3.

DEHB proposes unit-cube vectors; they are mapped onto the suite's parameters the way DEHB maps them onto a
ConfigSpace (linear or log per parameter, integers rounded, categoricals by index). As the package does,
every job trains its configuration from scratch up to the job's fidelity (the package has no checkpoint
resume — our engine's `dehb`, issue 13 item 7, resumes promoted configurations), and the epochs count.
The fitness told back is the value of the job's last epoch (sign-flipped when the suite maximises).
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

import numpy as np

from benchmarks.search_efficiency.simulator import COMPLETED, CONTINUE, Run
from benchmarks.search_efficiency.suites import Suite


def unit_to_config(suite: Suite, vector: np.ndarray) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for param, u in zip(suite.parameters, np.clip(vector, 0.0, 1.0)):
        if param.type == "categorical":
            config[param.name] = param.enum[min(int(u * len(param.enum)), len(param.enum) - 1)]
            continue
        low, high = float(param.minimum), float(param.maximum)
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if param.scale == "log" else low + u * (high - low)
        config[param.name] = int(min(max(round(value), low), high)) if param.type == "int" else float(value)
    return config


class DehbPolicy:
    def __init__(self, suite: Suite, *, seed: int) -> None:
        from dehb import DEHB

        self.suite = suite
        self.sign = 1.0 if suite.direction == "minimize" else -1.0
        self.folder = tempfile.TemporaryDirectory(prefix="dehb-")
        self.dehb = DEHB(f=None, dimensions=len(suite.parameters), min_fidelity=1, max_fidelity=suite.max_epochs, eta=3,
                         n_workers=1, seed=seed, output_path=self.folder.name, log_level="ERROR", save_freq=None)
        self.jobs: dict[int, dict[str, Any]] = {}
        self.values: dict[int, float] = {}
        self.count = 0

    def next_run(self) -> Run | None:
        job = self.dehb.ask()
        key = self.count
        self.count += 1
        self.jobs[key] = job
        stop = int(min(max(round(float(job["fidelity"])), 1), self.suite.max_epochs))
        return Run(key=key, config=unit_to_config(self.suite, np.asarray(job["config"], dtype=float)), start_epoch=0,
                   stop_epoch=stop)

    def on_epoch(self, key: int, epoch: int, value: float) -> str:
        self.values[key] = value
        return CONTINUE

    def on_run_end(self, key: int, epoch: int, reason: str) -> None:
        job = self.jobs.pop(key)
        if reason == COMPLETED:
            self.dehb.tell(job, {"fitness": self.sign * self.values.pop(key), "cost": float(epoch)})

    def close(self) -> None:
        self.folder.cleanup()

"""The simulated trial backend: replays learning curves through a search policy on a simulated clock with
`workers` trials running at once (Syne Tune's simulator backend is the model: an event queue of epoch
completions in simulated time, so a sweep of thousands of epochs takes seconds of real time).

Contract between the simulator and a `Policy` (one per algorithm family, see `policies.py`):

1. Whenever a worker is free and the epoch budget is not spent, the simulator asks `policy.next_run()`.
   The policy returns a `Run` — a trial key, its configuration, the epoch it starts after (0 for a new
   trial, the checkpoint's epoch for a resumed one: promoted/paused trials continue, no epoch is trained
   twice) and the epoch it stops at — or None when it has nothing to start now (it waits for results, or it
   is exhausted). A policy with nothing to start and nothing running ends the sweep.
2. Each epoch a run trains takes `suite cost` simulated seconds; when it completes the simulator calls
   `policy.on_epoch(key, epoch, value)`, which returns CONTINUE, STOP (pruned / early-stopped) or PAUSE
   (stopped now, may be resumed later by a later `next_run`).
3. When a run reaches its stop epoch, or was stopped or paused, the simulator calls
   `policy.on_run_end(key, epoch, reason)` with reason "completed", "stopped" or "paused".

Events that complete at the same simulated time are processed in the order the runs were started, so a
sweep is a pure function of (algorithm, suite, seed, workers). The budget counts epochs trained; the sweep
stops launching once it is spent and stops every run at the epoch that spends it.

Every epoch that reaches the full budget R is a full-budget result: the incumbent is the configuration with
the best observed R-epoch value so far, and the trace records its regret (the distance of its true R-epoch
quality from the suite's optimum) against cumulative epochs trained.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from benchmarks.search_efficiency.suites import Suite, TrialCurve

CONTINUE, STOP, PAUSE = "continue", "stop", "pause"
COMPLETED, STOPPED, PAUSED = "completed", "stopped", "paused"


@dataclass(frozen=True)
class Run:
    key: Any
    config: Mapping[str, Any]
    start_epoch: int
    stop_epoch: int


class Policy(Protocol):
    def next_run(self) -> Run | None: ...

    def on_epoch(self, key: Any, epoch: int, value: float) -> str: ...

    def on_run_end(self, key: Any, epoch: int, reason: str) -> None: ...


@dataclass(frozen=True)
class Decision:
    """One run as the simulator saw it (the cross-check compares these with the real path)."""

    key: Any
    config: Mapping[str, Any]
    start_epoch: int
    end_epoch: int
    reason: str


@dataclass
class Trace:
    """The anytime result of one sweep: incumbent regret after each full-budget result."""

    algorithm: str
    suite: str
    seed: int
    budget_epochs: int
    epochs: list[int] = field(default_factory=list)      # cumulative epochs when the incumbent changed
    regret: list[float] = field(default_factory=list)    # incumbent regret from that point on
    total_epochs: int = 0
    full_budget_results: int = 0
    trials: int = 0
    decisions: list[Decision] = field(default_factory=list)
    sim_time: float = 0.0
    wall_s: float = 0.0

    def regret_at(self, epochs: int | np.ndarray) -> np.ndarray:
        """Incumbent regret after `epochs` cumulative epochs (inf before the first full-budget result)."""
        grid = np.atleast_1d(np.asarray(epochs))
        if not self.epochs:
            return np.full(grid.shape, np.inf)
        index = np.searchsorted(np.asarray(self.epochs), grid, side="right") - 1
        values = np.asarray(self.regret)[np.clip(index, 0, None)]
        return np.where(index >= 0, values, np.inf)

    def epochs_to(self, target: float) -> int | None:
        """Cumulative epochs until the incumbent's regret is <= target, None if never within the budget."""
        for epochs, regret in zip(self.epochs, self.regret):
            if regret <= target + 1e-12 and epochs <= self.budget_epochs:
                return epochs
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "suite": self.suite, "seed": self.seed,
                "budget_epochs": self.budget_epochs, "epochs": self.epochs, "regret": self.regret,
                "total_epochs": self.total_epochs, "full_budget_results": self.full_budget_results,
                "trials": self.trials}


@dataclass(order=True)
class _Event:
    time: float
    order: int
    epoch: int = field(compare=False)
    slot: _Running = field(compare=False)


@dataclass
class _Running:
    run: Run
    curve: TrialCurve
    order: int
    epoch: int


def simulate(policy: Policy, suite: Suite, *, seed: int, budget_epochs: int, workers: int = 1,
             algorithm: str = "", record_decisions: bool = False) -> Trace:
    """Run one sweep of `policy` on `suite` (see the module docstring)."""
    rng = np.random.default_rng([seed, 7919])  # the suite's noise stream, apart from the algorithm's
    trace = Trace(algorithm=algorithm, suite=suite.name, seed=seed, budget_epochs=budget_epochs)
    queue: list[_Event] = []
    running = 0
    order = 0
    now = 0.0
    best_observed: float | None = None
    curves: dict[Any, TrialCurve] = {}
    sign = 1.0 if suite.direction == "minimize" else -1.0
    exhausted = False

    def start(run: Run) -> None:
        nonlocal order, running
        curve = curves.get(run.key)
        if curve is None or curve.config != dict(run.config):
            curve = suite.curve(run.config, rng)
            curves[run.key] = curve
            trace.trials += 1
        slot = _Running(run=run, curve=curve, order=order, epoch=run.start_epoch)
        order += 1
        running += 1
        heapq.heappush(queue, _Event(now + curve.cost(run.start_epoch + 1), slot.order, run.start_epoch + 1, slot))

    def end(slot: _Running, reason: str) -> None:
        nonlocal running
        running -= 1
        if record_decisions:
            trace.decisions.append(Decision(slot.run.key, dict(slot.run.config), slot.run.start_epoch, slot.epoch, reason))
        policy.on_run_end(slot.run.key, slot.epoch, reason)

    while True:
        while not exhausted and running < workers and trace.total_epochs + running < budget_epochs:
            run = policy.next_run()
            if run is None:
                break
            if not 0 <= run.start_epoch < run.stop_epoch <= suite.max_epochs:
                raise ValueError(f"policy asked for epochs {run.start_epoch}..{run.stop_epoch} of a {suite.max_epochs}-epoch suite")
            start(run)
        if not queue:
            break
        event = heapq.heappop(queue)
        now = event.time
        slot = event.slot
        slot.epoch = event.epoch
        value = slot.curve.value(event.epoch)
        trace.total_epochs += 1
        if event.epoch == suite.max_epochs:
            trace.full_budget_results += 1
            if best_observed is None or sign * value < sign * best_observed:
                best_observed = value
                regret = slot.curve.regret
                if not trace.regret or regret != trace.regret[-1]:
                    trace.epochs.append(trace.total_epochs)
                    trace.regret.append(regret)
        action = policy.on_epoch(slot.run.key, event.epoch, value)
        if trace.total_epochs >= budget_epochs:
            exhausted = True
        if event.epoch >= slot.run.stop_epoch:
            end(slot, COMPLETED)
        elif action == STOP:
            end(slot, STOPPED)
        elif action == PAUSE:
            end(slot, PAUSED)
        elif exhausted:
            end(slot, PAUSED)
        else:
            heapq.heappush(queue, _Event(now + slot.curve.cost(event.epoch + 1), slot.order, event.epoch + 1, slot))
        if exhausted and not queue:
            break
    trace.sim_time = now
    return trace

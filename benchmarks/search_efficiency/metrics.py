"""The protocol's numbers, written once (issue 13, item 4).

- Regret of the incumbent counts only full-budget (R-epoch) results, against cumulative epochs trained.
- Budget B = 10 TAO-Hyperband iterations: `tao_hyperband_budget(R, eta)` counts one iteration's epochs
  exactly as TAO's brain schedules them (brackets s = smax..1, the s = 0 bracket dropped, promoted runs
  resume: a rung adds only its extra epochs) — 234 at R = 27, eta = 3, so B = 2,340.
- Target q* per suite = TAO Hyperband's median incumbent regret at the end of that budget.
- E = cumulative epochs until an algorithm's incumbent regret <= q*; a seed that never gets there is
  censored at B and counts as a failure. Speed-up = B / median(E) (failures enter the median as B), with a
  percentile-bootstrap 95% CI over seeds; success rate = share of seeds with E <= B.
- AUC = mean over epochs 1..B of the incumbent regret divided by the suite's regret cap (the worst first
  full-budget incumbent any run of that suite produced; also used before a run's first full-budget
  result), median over seeds — 0 is "optimum from the first epoch", 1 is "never better than the worst start".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.search_efficiency.simulator import Trace

BOOTSTRAP_RESAMPLES = 2000


def tao_hyperband_budget(max_epochs: int, reduction_factor: int = 3) -> int:
    """Epochs one TAO Hyperband iteration trains (see module docstring)."""
    smax = int(math.log(max_epochs) / math.log(reduction_factor))
    total = 0
    for s in range(smax, 0, -1):
        n = int(math.ceil(int((smax + 1) / (s + 1)) * reduction_factor ** s))
        r = int(max_epochs / reduction_factor ** s)
        previous = 0
        for i in range(s + 1):
            n_i, r_i = int(n * reduction_factor ** (-i)), int(r * reduction_factor ** i)
            total += n_i * (r_i - previous)
            previous = r_i
    return total


def protocol_budget(max_epochs: int, iterations: int = 10, reduction_factor: int = 3) -> int:
    return iterations * tao_hyperband_budget(max_epochs, reduction_factor)


def target(reference: Sequence[Trace], budget: int) -> float:
    """q*: the reference's (TAO Hyperband's) median final incumbent regret."""
    finals = np.array([float(t.regret_at(budget)[0]) for t in reference])
    return float(np.median(finals))


@dataclass(frozen=True)
class Summary:
    seeds: int
    median_epochs_to_target: float
    speedup: float
    ci_low: float
    ci_high: float
    success_rate: float
    auc: float
    epochs: tuple[float, ...] = ()  # E per seed (censored at B), for the CI of the geometric mean over suites
    budget: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return {"seeds": self.seeds, "median_epochs_to_target": self.median_epochs_to_target,
                "speedup": self.speedup, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "success_rate": self.success_rate, "auc": self.auc}


def epochs_to_target(traces: Sequence[Trace], q: float, budget: int) -> np.ndarray:
    """E per seed, censored at B (failures are B)."""
    out = []
    for trace in traces:
        epochs = trace.epochs_to(q)
        out.append(budget if epochs is None or epochs > budget else epochs)
    return np.array(out, dtype=float)


def regret_cap(traces: Sequence[Trace]) -> float:
    firsts = [t.regret[0] for t in traces if t.regret]
    return float(max(firsts)) if firsts else 1.0


def auc(trace: Trace, budget: int, cap: float) -> float:
    grid = np.arange(1, budget + 1)
    regret = np.minimum(trace.regret_at(grid), cap)
    return float(np.mean(regret) / cap) if cap > 0 else 0.0


def summarise(traces: Sequence[Trace], q: float, budget: int, cap: float, *, seed: int = 0) -> Summary:
    e = epochs_to_target(traces, q, budget)
    successes = np.array([t.epochs_to(q) is not None and t.epochs_to(q) <= budget for t in traces])
    median_e = float(np.median(e))
    rng = np.random.default_rng(seed)
    resampled = np.median(rng.choice(e, size=(BOOTSTRAP_RESAMPLES, len(e)), replace=True), axis=1)
    speedups = budget / resampled
    return Summary(
        seeds=len(traces), median_epochs_to_target=median_e, speedup=budget / median_e,
        ci_low=float(np.percentile(speedups, 2.5)), ci_high=float(np.percentile(speedups, 97.5)),
        success_rate=float(successes.mean()), auc=float(np.median([auc(t, budget, cap) for t in traces])),
        epochs=tuple(float(v) for v in e), budget=budget,
    )


def geometric_mean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0]
    return float(math.exp(np.mean(np.log(values)))) if values else float("nan")


def geometric_mean_ci(summaries: Sequence[Summary], *, seed: int = 0) -> tuple[float, float, float]:
    """(geometric mean of the suites' speed-ups, 95 % CI): each bootstrap resample draws every suite's seeds
    with replacement (independently per suite) and takes the geometric mean of the resampled speed-ups."""
    point = geometric_mean([s.speedup for s in summaries])
    rng = np.random.default_rng(seed)
    logs = np.zeros(BOOTSTRAP_RESAMPLES)
    for summary in summaries:
        e = np.asarray(summary.epochs, dtype=float)
        medians = np.median(rng.choice(e, size=(BOOTSTRAP_RESAMPLES, len(e)), replace=True), axis=1)
        logs += np.log(summary.budget / medians)
    resampled = np.exp(logs / max(1, len(summaries)))
    return point, float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))

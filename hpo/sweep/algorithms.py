"""The search algorithms as names: every `algorithm.name` a sweep config may give, which backends run it, and
the sampler (who proposes) and scheduler (who stops early) it resolves to. Pure data and lookups; it builds
nothing and imports no backend.

- `ALGORITHMS`: algorithm.name -> `Algorithm`. A sampler algorithm (random, tpe, ...) takes its scheduler from
  `algorithm.pruner`; a scheduler algorithm (hyperband, asha, hyperband_es) takes its sampler from
  `algorithm.sampler`; the others bring both (bohb, dehb, mfbo, pbt), per backend.
- `PRUNERS`: `algorithm.pruner` of a sampler algorithm -> the scheduler it names.

The sweep config's rules (`hpo.sweep.config_rules`: names, "pbt needs backend ray", resolution) read these
tables; the backends build the resolved names through `hpo.backends.algorithms` (`SAMPLERS`, `SCHEDULERS`,
keyed by the names resolved here). The sweep config never imports the backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from skillkit.errors import SweepConfigError

OPTUNA, RAY = "optuna", "ray"
BACKEND_NAMES = (RAY, OPTUNA)


@dataclass(frozen=True)
class Algorithm:
    """One `algorithm.name`: which backends run it and what it resolves to.

    `kind` "sampler": the name is the sampler, the scheduler comes from `algorithm.pruner`; "scheduler": the
    name is the scheduler, the sampler comes from `algorithm.sampler`; "own": it brings both, per backend in
    `resolves`, and `proposals` says how it proposes. `refusal` says why a backend not in `backends` cannot run it.
    """

    name: str
    kind: Literal["sampler", "scheduler", "own"]
    backends: tuple[str, ...] = BACKEND_NAMES
    resolves: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    proposals: str = ""
    refusal: str = ""


# ------------------------------------------------------------------------------------------- tables

ALGORITHMS: dict[str, Algorithm] = {entry.name: entry for entry in (
    Algorithm("mfbo", "own", resolves={RAY: ("mfbo", "hyperband"), OPTUNA: ("mfbo", "hyperband")},
              proposals="a same-budget GP model"),
    Algorithm("random", "sampler"),
    Algorithm("tpe", "sampler"),
    Algorithm("bayesian", "sampler"),
    Algorithm("cmaes", "sampler"),
    Algorithm("grid", "sampler"),
    Algorithm("hyperband", "scheduler"),
    Algorithm("asha", "scheduler"),
    # Optuna runs BOHB as TPE + Hyperband pruner, its documented BOHB equivalent.
    Algorithm("bohb", "own", resolves={RAY: ("bohb", "bohb"), OPTUNA: ("tpe", "hyperband")},
              proposals="a density model per budget"),
    Algorithm("pbt", "own", backends=(RAY,), resolves={RAY: ("random", "pbt")}, proposals="its population",
              refusal="Optuna has no population-based training"),
    # Differential-evolution proposals, Hyperband budgets; promoted trials continue (hpo.backends.de_sampler).
    Algorithm("dehb", "own", resolves={RAY: ("dehb", "hyperband"), OPTUNA: ("dehb", "hyperband")},
              proposals="differential evolution"),
    Algorithm("bfbo", "sampler"),
    Algorithm("hyperband_es", "scheduler"),
)}

# `algorithm.pruner` of a sampler algorithm -> the scheduler it names.
PRUNERS = {"none": "none", "median": "median", "successive_halving": "asha", "hyperband": "hyperband"}


# ------------------------------------------------------------------------------------------ lookups


def names_of(kind: str) -> tuple[str, ...]:
    """The algorithm names of one kind ("sampler", "scheduler", "own"), in the table's order."""
    return tuple(name for name, entry in ALGORITHMS.items() if entry.kind == kind)


def algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise SweepConfigError(f"algorithm.name {name!r} is unknown; allowed: {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[name]


def backend_problem(name: str, backend: str) -> str | None:
    """Why `backend` cannot run algorithm `name` (a sentence for the sweep config's problems), or None."""
    entry = algorithm(name)
    if backend in entry.backends:
        return None
    needed = " or ".join(repr(b) for b in entry.backends)
    return f"algorithm {name!r} needs backend {needed} ({entry.refusal}); set backend: {entry.backends[0]}."


def resolve(name: str, backend: str, *, pruner: str | None = None, sampler: str | None = None) -> tuple[str, str]:
    """(sampler, scheduler) that algorithm `name` runs on `backend`, with the config's `algorithm.pruner`
    (sampler algorithms) or `algorithm.sampler` (scheduler algorithms); assumes the config's checks passed."""
    entry = algorithm(name)
    if entry.kind == "sampler":
        return name, PRUNERS[pruner or "none"]
    if entry.kind == "scheduler":
        return sampler or "random", name
    return entry.resolves[backend]

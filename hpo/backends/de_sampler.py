"""Differential-evolution proposals for `dehb` (DEHB: differential evolution + Hyperband).

DEHB (Awad et al., 2021) replaces Hyperband's random draws with differential evolution: each new
configuration is a mutant of configurations that did well. This sampler proposes the configurations;
Hyperband decides how long each one trains (Optuna's `HyperbandPruner` on backend optuna, Ray's synchronous
`HyperBandScheduler` on backend ray). Unlike the `dehb` package, which trains every promoted configuration
again from scratch at the next budget, a promoted configuration here continues from its own checkpoint
(Ray pauses it at the rung and resumes it; Optuna simply lets it run on), so no epoch is trained twice.

The population: the study's trials in every bracket (complete, pruned or still running) that reached the highest budget
(epochs trained) at which at least `MIN_POPULATION` of them report a value — results at one budget are
comparable, results at different budgets are not. The better half of them (at least `MIN_POPULATION`)
is the population, as DE's selection step (a child replaces its parent only if better) would leave it.

A proposal (DE/rand/1/bin, DEHB's defaults F = 0.5, CR = 0.5), in the unit cube of `unit_cube.py`:
target t and three other members a, b, c drawn from the population; mutant v = a + F·(b − c), a coordinate
that leaves [0, 1] redrawn uniformly (DEHB's repair); child = v's coordinate with probability CR (and at one
random coordinate always), else t's. Until a population exists, trials are drawn at random (option weights
honoured), which is also what Hyperband's first bracket gets in DEHB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from hpo.backends.unit_cube import CubeSampler, Proposal

if TYPE_CHECKING:
    from optuna.study import Study

    from hpo.space import SearchSpace

MIN_POPULATION = 4  # DE/rand/1 needs a target and three distinct donors
_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class DifferentialEvolutionSampler(CubeSampler):
    """See the module docstring. `mutation_factor` is DE's F in (0, 2]; `crossover_prob` its CR in [0, 1]."""

    def __init__(self, space: SearchSpace, *, seed: int, epoch_budget: int | None,
                 mutation_factor: float = 0.5, crossover_prob: float = 0.5) -> None:
        if not 0.0 < mutation_factor <= 2.0:
            raise ValueError(f"mutation_factor must be in (0, 2], got {mutation_factor}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        super().__init__(space, seed=seed, epoch_budget=epoch_budget)
        self.mutation_factor = float(mutation_factor)
        self.crossover_prob = float(crossover_prob)
        self._n_startup_trials = MIN_POPULATION  # read by the space's weighted-startup wrapper

    def population(self, study: Study, trial: FrozenTrial) -> tuple[int, np.ndarray] | None:
        """(budget, population vectors best first), or None while no budget has MIN_POPULATION results."""
        # Optuna's Hyperband pruner shows a sampler only the trials of its bracket; DEHB's populations are per
        # budget across all brackets, so read the whole study (the private attribute is guarded).
        study = getattr(study, "_study", study)
        by_budget: dict[int, list[tuple[float, np.ndarray]]] = {}
        sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
        for other, vector in self.points(study, _STATES):
            if other.number == trial.number:
                continue
            for step, value in other.intermediate_values.items():
                if value is not None and np.isfinite(value):
                    by_budget.setdefault(int(step), []).append((sign * float(value), vector))
        budgets = [b for b, members in by_budget.items() if len(members) >= MIN_POPULATION]
        if not budgets:
            return None
        budget = max(budgets)
        ranked = sorted(by_budget[budget], key=lambda member: member[0])
        keep = max(MIN_POPULATION, (len(ranked) + 1) // 2)
        return budget, np.array([vector for _, vector in ranked[:keep]])

    def mutate(self, population: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One DE/rand/1/bin child of `population` (rows are members)."""
        target, a, b, c = rng.choice(len(population), size=4, replace=False)
        mutant = population[a] + self.mutation_factor * (population[b] - population[c])
        outside = (mutant < 0.0) | (mutant > 1.0)
        mutant[outside] = rng.random(int(outside.sum()))
        cross = rng.random(len(mutant)) < self.crossover_prob
        cross[rng.integers(len(mutant))] = True
        return np.where(cross, mutant, population[target])

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Proposal | None:
        found = self.population(study, trial)
        if found is None:
            return None
        budget, population = found
        return Proposal(self.mutate(population, rng),
                        {"algorithm": "dehb", "budget": budget, "population": len(population)})

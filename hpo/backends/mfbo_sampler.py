"""`mfbo`: a model-based proposer that learns only from results at one budget — the highest with enough of them.

Why: with early stopping most trials end at a low epoch count, and a sampler that pools every budget (Optuna's
TPE ranks a pruned trial below every complete one; TAO's BOHB keeps a promoted configuration's lowest-budget
score) learns mostly from 1-epoch scores, which rank configurations differently from full training (a high
learning rate wins the first epoch and loses the last). BOHB's remedy, one model per budget, is kept here in
its simplest form: the proposal model is fitted on the values every trial reported at budget `b`, where `b`
is the highest epoch count that at least `min_points` trials have reached (so it moves up the rungs as the
sweep goes: 1 epoch, then 3, 9, the full budget). Early stopping stays with the pruner (Hyperband brackets),
which is what makes the low-budget results cheap.

The model (`surrogate`) is Optuna's multivariate TPE or its Gaussian-process sampler (GPSampler: a Matérn
kernel with log expected improvement), run on a private in-memory study that holds only those same-budget
observations (params → value at `b`), pooled over the Hyperband brackets. A GP needs far fewer results to
locate the optimum of a smooth response (a learning rate's, a loss weight's), which is what the search-
efficiency benchmark measured (benchmarks/search_efficiency/README.md, "The default algorithm"); it costs
about 0.1-0.3 s a proposal on one core, nothing beside an epoch of training. Trials still running that have not reached `b` enter as the worst
value seen (a constant liar), so parallel workers spread out instead of proposing the same point. Before
`min_points` results exist at any budget, proposals come from the wrapped startup sampler (the space's
weighted random draws). The first proposal is the schema's defaults (`hpo.driver.plan.first_batch`), so a
sweep starts from what the skill's authors chose and its score is the baseline to beat.

Two more knobs, benchmarked as variants (benchmarks/search_efficiency/README.md, "The default algorithm"):
`random_fraction` draws that share of the model-phase proposals at random (BOHB's 1/3), so a model that has
locked onto a wrong region still sees elsewhere; `model_budget="rank_agreement"` fits the model on a LOWER
budget than the highest filled one when the two budgets rank the trials alike (Kendall tau >= 0.5 over the
trials that reached both, as Hyper-Tune and MOBSTER weigh budgets by rank consistency): where early epochs
already rank configurations like full training, the lower budget's many results are the better data; where
they mislead, the tau is low and the highest budget is used as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GPSampler, RandomSampler, TPESampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo.sweep.config_rules import MFBO_MIN_POINTS

if TYPE_CHECKING:
    from hpo.space import SearchSpace

#: The fewest same-budget results the model is fitted on (below that at every budget: random proposals).
DEFAULT_MIN_POINTS = MFBO_MIN_POINTS
#: model_budget values: fit on the highest filled budget, or on the lowest one that ranks trials like it.
MODEL_BUDGETS = ("highest", "rank_agreement")
#: surrogate values: the model fitted on the same-budget results.
SURROGATES = ("tpe", "gp")
#: Kendall tau between a lower budget's and the highest filled budget's values above which they "agree".
RANK_AGREEMENT_TAU = 0.5


def kendall_tau(pairs: Sequence[tuple[float, float]]) -> float:
    """Kendall's tau-a of (x, y) pairs: (concordant - discordant) / all pairs; 0.0 for fewer than 2 pairs.
    Quadratic, fine for the few dozen trials that reach a high budget."""
    if len(pairs) < 2:
        return 0.0
    x = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs])
    sign = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    n = len(pairs)
    return float(np.triu(sign, 1).sum() / (n * (n - 1) / 2))


def default_values(space: SearchSpace) -> dict[str, Any]:
    """The schema defaults of the space's plain scalar parameters (those whose primitive draw is the value
    itself), where the default lies inside the searched range: static-point name → value."""
    out: dict[str, Any] = {}
    for param in space.parameters:
        if param.is_conditional or param.default is None or space.value_problem(param.name, param.default) is not None:
            continue
        out[param.name] = param.default
    return out


def default_point(space: SearchSpace, seed: int, *, epoch_budget: int | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(configuration, static point) of the schema defaults: plain scalars at their default, the rest (lists,
    relational children, defaults outside the searched range) drawn at random with `seed`."""
    _, point = space.sample_static(np.random.default_rng(seed), epoch_budget=epoch_budget)
    point.update({name: value for name, value in default_values(space).items() if name in point})
    return space.decode(point, epoch_budget=epoch_budget), point


def _all_trials(study: Study, states: tuple[TrialState, ...] | None) -> list[FrozenTrial]:
    """Every trial of the study, from its storage. Optuna hands a sampler only the trials of the new trial's
    Hyperband bracket (`HyperbandPruner`'s bracket study); a same-budget model wants all of them: a 3-epoch
    result is a 3-epoch result whichever bracket ran it."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False, states=states)


def _observed(trial: FrozenTrial, step: int) -> bool:
    value = trial.intermediate_values.get(step)
    return value is not None and value == value


class SameBudgetTPESampler(BaseSampler):
    """Multivariate TPE fitted on the results of the highest budget that has `min_points` of them (module doc).

    seed: seeds the model's candidate draws and the random fallback. min_points: see DEFAULT_MIN_POINTS
    (at least 2). random_fraction, model_budget: the two knobs of the module doc. first: static-point values
    of the study's first trial (the schema defaults, `default_values`); a value outside the parameter's
    distribution is drawn at random instead. Budgets are Optuna steps: the epochs trained when the value was
    reported.
    """

    def __init__(self, *, seed: int | None = None, min_points: int = DEFAULT_MIN_POINTS,
                 first: Mapping[str, Any] | None = None, random_fraction: float = 0.0,
                 model_budget: str = "highest", surrogate: str = "tpe") -> None:
        if min_points < 2:
            raise ValueError(f"min_points must be >= 2, got {min_points}.")
        if not 0.0 <= random_fraction <= 1.0:
            raise ValueError(f"random_fraction must lie in [0, 1], got {random_fraction}.")
        if model_budget not in MODEL_BUDGETS:
            raise ValueError(f"model_budget must be one of {', '.join(MODEL_BUDGETS)}, got {model_budget!r}.")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {surrogate!r}.")
        self._min_points = min_points
        self._random_fraction = random_fraction
        self._model_budget = model_budget
        # Read like TPE's by WeightedStartupSampler: its weighted startup draws stop when the model can start.
        self._n_startup_trials = min_points
        self._seed = seed
        self._model: BaseSampler = (
            GPSampler(seed=seed, n_startup_trials=0, warn_independent_sampling=False) if surrogate == "gp"
            else TPESampler(seed=seed, multivariate=True, n_startup_trials=0, constant_liar=False))
        self._random = RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace(include_pruned=True)
        self._first = dict(first or {})
        #: budget the last model-based proposal was fitted at (None: random), for tests and plans.
        self.last_budget: int | None = None

    # -- the budget and its observations -------------------------------------------------------------------
    def model_budget(self, trials: Sequence[FrozenTrial]) -> int | None:
        """The step the model is fitted at, or None: the highest step that at least `min_points` trials
        reported a value at; with model_budget "rank_agreement", the lowest filled step below it whose values
        rank the trials that reached both like the highest one does (tau >= RANK_AGREEMENT_TAU)."""
        counts: dict[int, int] = {}
        for trial in trials:
            for step, value in trial.intermediate_values.items():
                if value == value:  # NaN (a diverged epoch) is no observation
                    counts[step] = counts.get(step, 0) + 1
        filled = sorted(step for step, count in counts.items() if count >= self._min_points)
        if not filled:
            return None
        top = filled[-1]
        if self._model_budget == "rank_agreement":
            for step in filled[:-1]:
                pairs = [(t.intermediate_values[step], t.intermediate_values[top]) for t in trials
                         if _observed(t, step) and _observed(t, top)]
                if len(pairs) >= self._min_points and kendall_tau(pairs) >= RANK_AGREEMENT_TAU:
                    return step
        return top

    def _observations(self, trials: Sequence[FrozenTrial], budget: int, space: dict[str, BaseDistribution],
                      direction: StudyDirection) -> list[FrozenTrial]:
        observed: list[tuple[dict[str, Any], float]] = []
        waiting: list[dict[str, Any]] = []
        for trial in trials:
            if not space.keys() <= trial.params.keys():
                continue
            params = {name: trial.params[name] for name in space}
            value = trial.intermediate_values.get(budget)
            if value is not None and value == value:
                observed.append((params, float(value)))
            elif trial.state == TrialState.RUNNING:
                waiting.append(params)
        values = [value for _, value in observed]
        worst = max(values) if direction == StudyDirection.MINIMIZE else min(values)
        observed += [(params, worst) for params in waiting]
        return [optuna.trial.create_trial(params=params, distributions=space, value=value)
                for params, value in observed]

    # -- BaseSampler ---------------------------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: dist for name, dist in self._space.calculate(study).items() if not dist.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self.last_budget = None
        if not search_space:
            return {}
        trials = [t for t in _all_trials(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
                  if t.number != trial.number]
        budget = self.model_budget(trials)
        if budget is None or self._draws_at_random(trial.number):
            return {}
        private = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction=study.direction,
                                      sampler=self._model)
        private.add_trials(self._observations(trials, budget, search_space, study.direction))
        self.last_budget = budget
        # The model writes what it proposes onto the trial it is handed (GPSampler shares relative params
        # through trial attributes): hand it a stand-in of the private study, not a trial of another storage.
        stand_in = private._storage.get_trial(private._storage.create_new_trial(private._study_id))
        return self._model.sample_relative(private, stand_in, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if param_name in self._first and self._is_first(study, trial):
            value = self._first[param_name]
            try:
                inside = param_distribution._contains(param_distribution.to_internal_repr(value))
            except (ValueError, TypeError):  # a choice the distribution does not have
                inside = False
            if inside:
                return value
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def _draws_at_random(self, number: int) -> bool:
        """Whether trial `number` is one of the `random_fraction` random proposals: decided by (seed, number)
        alone, so a resumed sweep makes the same choice."""
        if self._random_fraction <= 0.0:
            return False
        return bool(np.random.default_rng([self._seed or 0, number]).random() < self._random_fraction)

    @staticmethod
    def _is_first(study: Study, trial: FrozenTrial) -> bool:
        return all(other.number >= trial.number for other in _all_trials(study, None))

    def reseed_rng(self) -> None:
        self._model.reseed_rng()
        self._random.reseed_rng()

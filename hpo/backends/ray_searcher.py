"""A Ray Tune searcher that proposes configurations from the compiled space through an Optuna study, and
tells the study the truth about early-stopped trials.

Why not Ray's own `OptunaSearch`: when a scheduler (ASHA, HyperBand, median) stops a trial early, Ray calls
`on_trial_complete` with the trial's last result, and `OptunaSearch` tells Optuna that partial score as a
COMPLETE, full-budget result — the flaw this engine fixes. `SpaceSearcher` reports each epoch as an
intermediate value and tells a trial COMPLETE only when it reached the epoch budget (value = its best
validation); a trial stopped earlier is told PRUNED, which TPE ranks below every complete trial and GP /
CMA-ES ignore. It also runs the space's define-by-run `suggest`, so conditional spaces work, and keeps the
study in the sweep's state folder, so `Tuner.restore` resumes the same study.

Ray pickles the searcher into the experiment folder (for `Tuner.restore`); the study handle is dropped
from the pickle and reopened from storage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hpo import selection
from hpo.backends.optuna_factory import make_sampler, make_storage
from hpo.driver.context import plain
from hpo.space import SearchSpace
from hpo.sweep.config import AlgorithmConfig

log = logging.getLogger(__name__)


class SpaceSearcher(Searcher):
    def __init__(
        self,
        *,
        space: SearchSpace,
        algorithm: AlgorithmConfig,
        seed: int,
        storage_url: str,
        study_name: str,
        metric: str,
        mode: str,
        max_epochs: int,
        planned: Sequence[Mapping[str, Any]] = (),
        keeper_key: str | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.keeper_key = keeper_key
        self.space = space
        self.algorithm = algorithm
        self.seed = seed
        self.storage_url = storage_url
        self.study_name = study_name
        self.max_epochs = max_epochs
        self.planned = [dict(p) for p in planned]
        self._numbers: dict[str, int] = {}       # Ray trial id -> Optuna trial number
        self._reported: dict[str, list[int]] = {}  # Ray trial id -> epochs reported as intermediate values
        self._best: dict[str, float] = {}
        self._study: optuna.Study | None = None
        self._trials: dict[str, optuna.trial.Trial] = {}

    # -- study ---------------------------------------------------------------------------------------------
    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.create_study(
                study_name=self.study_name, storage=make_storage(self.storage_url),
                direction=self.direction, load_if_exists=True,
                sampler=make_sampler(self.algorithm, self.space, self.seed, epoch_budget=self.max_epochs),
            )
            if self.planned and not self._study.get_trials(deepcopy=False):
                for params in self.planned:
                    self._study.enqueue_trial(params, skip_if_exists=True)
        return self._study

    def _trial(self, trial_id: str) -> optuna.trial.Trial | None:
        if trial_id in self._trials:
            return self._trials[trial_id]
        number = self._numbers.get(trial_id)
        if number is None:
            return None
        frozen = self.study.get_trials(deepcopy=False)[number]
        if frozen.state != TrialState.RUNNING:
            return None
        trial = optuna.trial.Trial(self.study, frozen._trial_id)
        self._trials[trial_id] = trial
        # Values stored after the searcher's last save (a driver killed in between) count as reported.
        self._reported[trial_id] = sorted(set(self._reported.get(trial_id, [])) | set(frozen.intermediate_values))
        return trial

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_study"] = None
        state["_trials"] = {}
        return state

    # -- Ray Searcher API ----------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # Metric and mode come from our constructor; Ray's param_space is unused (we sample the space).
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A new configuration, or first a trial the restored experiment lost (see `_orphan`), re-attached
        under this Ray trial id with the params it had (and, under `ray.storage`, the Ray config entry naming
        its previous incarnation, whose files the trainable takes up). The engine records the trial before Ray
        launches it."""
        from hpo.backends.ray_callbacks import live_keeper

        orphan = self._orphan()
        keeper = live_keeper(getattr(self, "keeper_key", None))
        if orphan is None and keeper is not None and len(keeper.records) >= self.algorithm.max_trials:
            # Every budgeted trial is recorded (one that ran wholly after Ray's last snapshot included).
            return Searcher.FINISHED
        trial = optuna.trial.Trial(self.study, orphan._trial_id) if orphan is not None else self.study.ask()
        params = plain(self.space.suggest(trial, epoch_budget=self.max_epochs))  # an orphan's drawn values stay
        previous = orphan.user_attrs.get("hpo_trial_id") if orphan is not None else None
        trial.set_user_attr("hpo_trial_id", trial_id)
        self._numbers[trial_id] = trial.number
        self._trials[trial_id] = trial
        self._reported[trial_id] = sorted(orphan.intermediate_values) if orphan is not None else []
        for value in (orphan.intermediate_values.values() if orphan is not None else ()):
            if selection.better(float(value), self._best.get(trial_id), self.direction):
                self._best[trial_id] = float(value)
        extra: dict[str, str] = {}
        if keeper is not None:
            if previous and previous != trial_id:
                log.warning("%s: started before the driver died but unknown to the restored experiment; it "
                            "continues as %s from its last checkpoint", previous, trial_id)
                extra = keeper.reattach(previous, trial_id)
            keeper.proposed(trial_id, params)
        return {**params, **extra}

    def _orphan(self) -> optuna.trial.FrozenTrial | None:
        """The oldest study trial still RUNNING that no Ray trial of this experiment holds: asked before the
        previous driver died, after Ray's last snapshot (so the restored experiment does not know it). It is
        the trial the uninterrupted sweep was running, so it is taken up before anything new is asked."""
        held = set(self._numbers.values())
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number not in held:
                return frozen
        return None

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return selection.MAXIMIZE if self.mode == "max" else selection.MINIMIZE

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._trial(trial_id)
        trained, value = result.get("epochs_trained"), result.get(self.metric)
        if trial is None or not isinstance(trained, int) or not isinstance(value, (int, float)):
            return
        reported = self._reported.setdefault(trial_id, [])
        if trained in reported:
            return
        trial.report(float(value), trained)  # Optuna's step: epochs trained, the resource its pruners count
        reported.append(trained)
        if selection.better(float(value), self._best.get(trial_id), self.direction):
            self._best[trial_id] = float(value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self._trial(trial_id)
        if trial is None:
            return
        if result:
            self.on_trial_result(trial_id, result)
        reached = result is not None and isinstance(result.get("epochs_trained"), int) and result["epochs_trained"] >= self.max_epochs
        if error:
            self.study.tell(trial, state=TrialState.FAIL)
        elif reached and trial_id in self._best:
            self.study.tell(trial, self._best[trial_id])
        else:
            # Stopped by the scheduler (or the budget) before its epoch budget: a partial result.
            self.study.tell(trial, state=TrialState.PRUNED)
        self._trials.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w", encoding="utf-8") as handle:
            json.dump({"numbers": self._numbers, "reported": self._reported, "best": self._best}, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as handle:
            data = json.load(handle)
        self._numbers = {k: int(v) for k, v in data["numbers"].items()}
        self._reported = {k: list(v) for k, v in data["reported"].items()}
        self._best = {k: float(v) for k, v in data["best"].items()}
        self._trials = {}
        # Trials asked after the last save belong to no restored Ray trial: `suggest` re-attaches them first.

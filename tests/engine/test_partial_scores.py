"""The known flaw: an early-stopped trial's partial score fed to the model as if it were a full-budget result.

Ray's stock `OptunaSearch` receives a scheduler-stopped trial through `on_trial_complete(result=last)` and
tells Optuna COMPLETE with that partial value; TPE then ranks it among full-budget trials. Our
`SpaceSearcher` reports every epoch as an intermediate value and tells such a trial PRUNED. These tests
drive both searchers directly (no Ray cluster needed) with the same early-stopped trial.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.backends.ray_searcher import SpaceSearcher
from hpo.space import compile_space
from hpo.sweep.config import AlgorithmConfig
from skillkit.skill_dir import SkillDir
from tests.engine.fixture_skill import make_fixture_skill

pytest.importorskip("ray")


@pytest.fixture
def space(tmp_path: Path):  # noqa: ANN201
    return compile_space(SkillDir(make_fixture_skill(tmp_path / "skill")).schema("train"))


def searcher(space, tmp_path: Path) -> SpaceSearcher:  # noqa: ANN001
    algorithm = AlgorithmConfig(name="asha", sampler="tpe", scheduler="asha", max_trials=10, max_epochs=4, n_startup_trials=2)
    return SpaceSearcher(space=space, algorithm=algorithm, seed=0, storage_url=f"sqlite:///{tmp_path / 'o.db'}",
                         study_name="s", metric="mIoU", mode="max", max_epochs=4)


def test_early_stopped_trial_is_told_pruned_not_complete(space, tmp_path: Path) -> None:  # noqa: ANN001
    ours = searcher(space, tmp_path)
    full = ours.suggest("full")
    ours.suggest("stopped")
    assert set(full) == set(space.names)
    for epoch, value in enumerate([0.1, 0.2, 0.3, 0.35], 1):
        ours.on_trial_result("full", {"epochs_trained": epoch, "mIoU": value})
    ours.on_trial_complete("full", {"epochs_trained": 4, "mIoU": 0.35})
    # A scheduler stops this one after epoch 1 with a high partial score; Ray skips on_trial_result for the
    # stopping result and hands it to on_trial_complete.
    ours.on_trial_complete("stopped", {"epochs_trained": 1, "mIoU": 0.9})
    study = ours.study
    by_id = {t.user_attrs["hpo_trial_id"]: t for t in study.trials}
    assert by_id["full"].state == TrialState.COMPLETE and by_id["full"].value == pytest.approx(0.35)
    assert by_id["stopped"].state == TrialState.PRUNED and by_id["stopped"].intermediate_values == {1: 0.9}
    assert study.best_trial.user_attrs["hpo_trial_id"] == "full"
    errored = ours.suggest("errored")
    ours.on_trial_complete("errored", None, error=True)
    assert by_id.keys() <= {t.user_attrs["hpo_trial_id"] for t in study.trials}
    assert study.trials[-1].state == TrialState.FAIL and errored


def test_ray_optuna_search_has_the_flaw(space) -> None:  # noqa: ANN001
    """Documents why we do not use Ray's OptunaSearch: it tells the same trial COMPLETE with 0.9."""
    from ray.tune.search.optuna import OptunaSearch

    stock = OptunaSearch(space=space.optuna_distributions(), metric="mIoU", mode="max", seed=0)
    stock.suggest("stopped")
    stock.on_trial_complete("stopped", {"epochs_trained": 1, "mIoU": 0.9})
    (trial,) = stock._ot_study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.9


def test_searcher_survives_pickling_and_restore(space, tmp_path: Path) -> None:  # noqa: ANN001
    import pickle

    first = searcher(space, tmp_path)
    first.suggest("a")
    first.on_trial_result("a", {"epochs_trained": 1, "mIoU": 0.2})
    first.save(str(tmp_path / "searcher.json"))
    first.on_trial_result("a", {"epochs_trained": 2, "mIoU": 0.3})  # stored after the save: a driver killed here
    clone = pickle.loads(pickle.dumps(first))
    clone.restore(str(tmp_path / "searcher.json"))
    clone.on_trial_result("a", {"epochs_trained": 2, "mIoU": 0.3})  # replayed after the restore: not reported twice
    clone.on_trial_result("a", {"epochs_trained": 3, "mIoU": 0.4})
    clone.on_trial_complete("a", {"epochs_trained": 4, "mIoU": 0.5})
    (trial,) = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}").trials
    assert trial.intermediate_values == {1: 0.2, 2: 0.3, 3: 0.4, 4: 0.5}
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(0.5)

"""Bounded checkpoint disk during a sweep (`checkpoints.retention`, hpo/trials/retention.py): the rule per
trial state, and a long fixture sweep whose checkpoint count stays bounded while promotion and resume still
find what they need."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.driver.observer import SweepObserver
from hpo.driver.runner import resume_sweep, run_sweep
from hpo.sweep.config import load_sweep_config
from hpo.trials.record import COMPLETED, FAILED, PAUSED, PRUNED, RUNNING, TrialRecord
from hpo.trials.retention import apply_trial_retention, checkpoints_to_keep
from skillkit.checkpoints import list_checkpoints as checkpoints
from skillkit.errors import SweepConfigError
from skillkit.states import RunStatus
from skillkit.status import StatusLine, Validation
from tests.cluster.cluster_support import base_sweep


def _trial(tmp_path: Path, values: list[float], *, extra: tuple[tuple[int, int], ...] = ()) -> tuple[TrialRecord, Path]:
    """A trial folder with one checkpoint per validated epoch (step = 2 x epoch) plus `extra` (epoch, step)
    files, and its record."""
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    record = TrialRecord(trial_id="t", number=0, params={}, metric="mIoU", direction="maximize")
    for epoch, value in enumerate(values, 1):
        name = f"model_epoch_{epoch:03d}_step_{2 * epoch:05d}.pth"
        (trial_dir / name).write_text("w")
        line = StatusLine(RunStatus.RUNNING, epoch=epoch, step=2 * epoch, kpi={"mIoU": value})
        record.add_validation(Validation(line=line, metric="mIoU", value=value, seen_at=0.0), name)
    for epoch, step in extra:
        (trial_dir / f"model_epoch_{epoch:03d}_step_{step:05d}.pth").write_text("w")
    (trial_dir / "mask2former_model_latest.pth").symlink_to(sorted(p.name for p in trial_dir.glob("model_*"))[-1])
    return record, trial_dir


def _kept(record: TrialRecord, trial_dir: Path, keep_last: int = 1) -> list[str]:
    return sorted(p.name for p in checkpoints_to_keep(record, checkpoints(trial_dir), keep_last=keep_last))


def test_a_finished_pbt_trial_keeps_its_recent_checkpoints_for_exploiting_trials(tmp_path: Path) -> None:
    """Ray's PBT clones a donor's last SAVED checkpoint, which may predate the epoch the donor finished at
    (CI once saw a clone of a completed donor's epoch-2 file fail after retention removed it)."""
    record, trial_dir = _trial(tmp_path, [0.1, 0.2, 0.3, 0.5])
    record.state = COMPLETED
    assert _kept(record, trial_dir, keep_last=2) == ["model_epoch_004_step_00008.pth"]
    kept = sorted(p.name for p in checkpoints_to_keep(record, checkpoints(trial_dir), keep_last=2, donors=True))
    assert kept == ["model_epoch_003_step_00006.pth", "model_epoch_004_step_00008.pth"]


@pytest.mark.parametrize("state, expected", [
    # best is epoch 2 (0.5); the newest validated is epoch 4; (4, 9) is a file newer than the last validation.
    (RUNNING, ["model_epoch_002_step_00004.pth", "model_epoch_004_step_00008.pth", "model_epoch_004_step_00009.pth"]),
    (PAUSED, ["model_epoch_002_step_00004.pth", "model_epoch_004_step_00008.pth", "model_epoch_004_step_00009.pth"]),
    (FAILED, ["model_epoch_002_step_00004.pth", "model_epoch_004_step_00008.pth"]),
    (PRUNED, ["model_epoch_002_step_00004.pth"]),
    (COMPLETED, ["model_epoch_002_step_00004.pth"]),
])
def test_the_rule_keeps_best_and_what_can_still_resume(tmp_path: Path, state: str, expected: list[str]) -> None:
    # (1, 3) is a mid-epoch SIGTERM checkpoint older than later validations: never a resume point.
    record, trial_dir = _trial(tmp_path, [0.1, 0.5, 0.3, 0.2], extra=((1, 3), (4, 9)))
    record.state = state
    assert _kept(record, trial_dir) == expected


def test_keep_last_keeps_the_newest_validated_and_the_latest_link_follows(tmp_path: Path) -> None:
    record, trial_dir = _trial(tmp_path, [0.9, 0.1, 0.2, 0.3, 0.4])
    assert _kept(record, trial_dir, keep_last=3) == [f"model_epoch_{e:03d}_step_{2 * e:05d}.pth" for e in (1, 3, 4, 5)]
    record.state = PRUNED
    deleted = apply_trial_retention(record, trial_dir, keep_last=3)
    assert len(deleted) == 4
    assert [p.name for p in trial_dir.glob("model_*")] == ["model_epoch_001_step_00002.pth"]
    assert (trial_dir / "mask2former_model_latest.pth").resolve().name == "model_epoch_001_step_00002.pth"


def test_a_running_trial_without_validations_keeps_everything(tmp_path: Path) -> None:
    record, trial_dir = _trial(tmp_path, [], extra=((0, 1), (1, 2)))
    assert len(_kept(record, trial_dir)) == 2


class CheckpointCounter(SweepObserver):
    """After each recorded validation (after retention ran), counts the sweep's checkpoints up to each trial's
    last recorded epoch. Files a trainer wrote beyond that are in flight: the engine has not read their
    status lines yet (a fixture epoch takes milliseconds, so on a busy machine a trainer runs ahead)."""

    def __init__(self, trials_dir: Path) -> None:
        self.trials_dir = trials_dir
        self.recorded: dict[str, int] = {}
        self.finished: set[str] = set()
        # (settled checkpoints of the reporting trial, of the whole sweep, running trials, finished trials)
        self.samples: list[tuple[int, int, int, int]] = []

    def _settled(self, trial_id: str) -> int:
        last = self.recorded.get(trial_id, 0)
        return sum(1 for c in checkpoints(self.trials_dir / trial_id) if c.epoch <= last)

    def trial_reported(self, trial_record: TrialRecord, report: Mapping[str, Any]) -> None:
        self.recorded[trial_record.trial_id] = int(report["epoch"])
        total = sum(self._settled(trial_id) for trial_id in self.recorded)
        running = len(set(self.recorded) - self.finished)
        self.samples.append((self._settled(trial_record.trial_id), total, running, len(self.finished)))

    def trial_finished(self, trial_record: TrialRecord) -> None:
        self.finished.add(trial_record.trial_id)


def test_a_long_sweep_keeps_a_bounded_number_of_checkpoints(fixture_skill: Path, tmp_path: Path) -> None:
    sweep = base_sweep(fixture_skill, tmp_path / "ws", algorithm={"name": "random", "pruner": "successive_halving",
                                                                  "max_trials": 14, "max_epochs": 9, "grace_period": 1,
                                                                  "reduction_factor": 3},
                       spec_overrides={"fixture.sleep_s": 0.03}, promotion={"enabled": True, "evaluate": False})
    config = tmp_path / "fx.yaml"
    config.write_text(yaml.safe_dump(sweep, sort_keys=False))
    trials_dir = tmp_path / "ws" / "fx" / "trials"
    counter = CheckpointCounter(trials_dir)
    summary = run_sweep(config, observers=[counter])

    trained = sum(len(t["history"]) for t in summary["trials"])
    assert trained > 40, "the sweep is too short to show anything"
    # Bound: a running trial holds its best and its newest validated checkpoint, a finished trial one.
    for own, total, running, finished in counter.samples:
        assert own <= 2, (own, total, running, finished)
        assert total <= 2 * running + finished, (own, total, running, finished)
    assert max(total for _, total, _, _ in counter.samples) <= 2 * 2 + 14 < trained
    remaining = {trial.name: [p.name for p in trial.glob("model_epoch_*")] for trial in trials_dir.iterdir()}
    for trial in summary["trials"]:
        kept = remaining[trial["trial_id"]]
        assert kept == [trial["best"]["checkpoint"]], (trial["trial_id"], kept)
    best = summary["best"]
    assert (tmp_path / "ws" / "fx" / best["checkpoint"]).is_file()
    assert (tmp_path / "ws" / "fx" / "best" / "best.json").is_file()


def test_a_paused_trial_keeps_its_resume_point_and_resumes(fixture_skill: Path, tmp_path: Path) -> None:
    """A time budget pauses running trials mid-sweep; each keeps best + newest validated, and `hpo resume`
    continues from that checkpoint (no validated epoch trained twice). The budget leaves room for a slow trainer
    start on a loaded machine (each trial must have validated before it is paused) and still ends mid-trial."""
    sweep = base_sweep(fixture_skill, tmp_path / "ws", algorithm={"name": "random", "max_trials": 2, "max_epochs": 12,
                                                                  "time_budget_s": 3.0},
                       spec_overrides={"fixture.sleep_s": 0.4})
    config = tmp_path / "fx.yaml"
    config.write_text(yaml.safe_dump(sweep, sort_keys=False))
    first = run_sweep(config)
    assert first["status"] == "stopped" and {t["state"] for t in first["trials"]} == {PAUSED}
    trials_dir = tmp_path / "ws" / "fx" / "trials"
    for trial in first["trials"]:
        names = sorted(p.name for p in (trials_dir / trial["trial_id"]).glob("model_epoch_*"))
        newest = trial["history"][-1]["checkpoint"]
        assert newest in names and trial["best"]["checkpoint"] in names and len(names) <= 3, names
    summary = resume_sweep(tmp_path / "ws" / "fx", time_budget_s=0)
    assert {t["state"] for t in summary["trials"]} == {COMPLETED}
    for trial in summary["trials"]:
        epochs = (trials_dir / trial["trial_id"] / "epochs_run.txt").read_text().split()
        assert sorted(epochs, key=int) == [str(e) for e in range(1, 13)], epochs


def test_keep_all_keeps_every_checkpoint_and_conflicts_are_refused(fixture_skill: Path, tmp_path: Path) -> None:
    sweep = base_sweep(fixture_skill, tmp_path / "ws", algorithm={"name": "random", "max_trials": 2, "max_epochs": 3},
                       checkpoints={"retention": "keep_all"})
    config = tmp_path / "fx.yaml"
    config.write_text(yaml.safe_dump(sweep, sort_keys=False))
    run_sweep(config)
    assert len(list((tmp_path / "ws" / "fx" / "trials").glob("*/model_epoch_*"))) == 6
    bad = base_sweep(fixture_skill, tmp_path / "ws2", checkpoints={"retention": "bounded"},
                     promotion={"keep_all_checkpoints": True})
    config.write_text(yaml.safe_dump(bad, sort_keys=False))
    with pytest.raises(SweepConfigError, match=r"'checkpoints.retention' = 'bounded' deletes checkpoints during the sweep"):
        load_sweep_config(config)
    defaulted = base_sweep(fixture_skill, tmp_path / "ws3", promotion={"keep_all_checkpoints": True})
    config.write_text(yaml.safe_dump(defaulted, sort_keys=False))
    assert load_sweep_config(config).checkpoints.retention == "keep_all"

"""Steps both backends share around one trainer run: where to resume from, which checkpoint belongs to a
validation, how to build and launch the run, and which final state a run ends in.

Resume rule (the same for a pause, a PBT exploit and a driver restart): a trial continues from the
checkpoint of its LAST VALIDATED epoch, never from a mid-epoch checkpoint a SIGTERM produced. The epoch
after it was never completed, so no completed epoch is trained twice, and every checkpoint the engine
resumes from has a metric the scheduler has seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.trials.failures import Failure
from hpo.trials.record import TrialRecord
from hpo.trials.runner import TrainerProcess, TrialExit, TrialLaunch
from skillkit.checkpoints import CheckpointFile, checkpoint_for
from skillkit.errors import UserError
from skillkit.states import TrialState
from skillkit.status import STATUS_FILE, Validation, read_validations

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext


def resume_point(trial_dir: Path, validated_epochs: list[tuple[int, int | None]]) -> CheckpointFile | None:
    """The checkpoint of the latest validated epoch that has one (see the module docstring)."""
    for epoch, step in sorted(validated_epochs, reverse=True):
        found = checkpoint_for(trial_dir, epoch, step)
        if found is not None:
            return found
    return None


def ingest_status(record: TrialRecord, trial_dir: Path) -> list[Validation]:
    """Add every validation in the trial's status.json that the record lacks (a driver that died while the
    trainer kept writing); returns the new ones, oldest first."""
    known = set(record.epochs())
    new = []
    for validation in read_validations(trial_dir / STATUS_FILE, record.metric):
        if validation.epoch not in known:
            found = checkpoint_for(trial_dir, validation.epoch, validation.step)
            record.add_validation(validation, found.path.name if found else None)
            new.append(validation)
    return new


def record_validation(record: TrialRecord, validation: Validation, trial_dir: Path) -> tuple[dict, bool]:
    """Add a validation seen live, with the name of its checkpoint; returns (history entry, whether its
    epoch is new — a trainer's final SUCCESS line may repeat the last validation)."""
    found = checkpoint_for(trial_dir, validation.epoch, validation.step)
    new = record.add_validation(validation, found.path.name if found else None)
    return next(entry for entry in record.history if entry["epoch"] == validation.epoch), new


def build_process(
    ctx: SweepContext,
    record: TrialRecord,
    trial_dir: Path,
    *,
    resume_from: Path | None,
    cuda_visible_devices: str | None,
    kill_with_parent: bool = False,
    params: Mapping | None = None,
) -> TrainerProcess | Failure:
    """Write the trial's spec and return its (unstarted) trainer process, or the spec failure."""
    try:
        spec = ctx.trial_spec(params if params is not None else record.params, trial_dir, resume_from=resume_from)
    except UserError as error:
        return Failure("spec", f"the trial's spec is invalid: {error}")
    spec_path = ctx.write_trial_spec(spec, trial_dir)
    launch = TrialLaunch(
        trial_id=record.trial_id, trial_dir=trial_dir, argv=ctx.train_argv(spec_path), metric=ctx.metric,
        env=ctx.trial_env(cuda_visible_devices=cuda_visible_devices), timeout_s=ctx.config.trial.timeout_s,
        stop_grace_s=ctx.config.trial.stop_grace_s, kill_with_parent=kill_with_parent,
        expected_epochs=ctx.max_epochs,
    )
    return TrainerProcess(launch)


def final_state(record: TrialRecord, exit: TrialExit | None, *, max_epochs: int, pruned: bool, paused: bool,
                failure: Failure | None = None) -> tuple[str, Failure | None]:
    """(state, failure) of a trial whose trainer run ended.

    A failure reported by the trainer wins, except a 'killed' exit of a run the engine itself stopped.
    A run the engine stopped is PRUNED or PAUSED; a run that trained its `max_epochs` budget is COMPLETED.
    """
    failure = failure or (exit.failure if exit else None)
    reached = record.epochs_trained() >= max_epochs
    if failure is not None and not (failure.failure_class == "killed" and (pruned or paused)):
        return TrialState.FAILED, failure
    if reached:
        return TrialState.COMPLETED, None
    if paused:
        return TrialState.PAUSED, None
    if pruned:
        return TrialState.PRUNED, None
    return TrialState.FAILED, Failure("internal", f"the trainer ended after {record.epochs_trained()} of {max_epochs} "
                                                  "epochs without a failure and without being stopped")

"""The Ray Tune trainable: one Ray trial drives one trainer subprocess through the shared trial runner.

Why the class API: Ray tells a class trainable exactly when it is saved (`save_checkpoint`), restored
(`load_checkpoint`: a pause/resume, a PBT exploit, a `Tuner.restore`) and stopped (`cleanup`), which is what
pausing and exploiting a subprocess needs.

Life of a trial (calls from Ray, in this order):
- `setup(config)`: the trial's params (flat dotted dict, or {"params": {...}} under PBT).
- `load_checkpoint(pointer)` (only when resuming): the pointer says whose checkpoint to continue from. Our
  own → continue from it, and first replay any validations our status.json holds beyond it (results a
  killed driver had not recorded). Another trial's (PBT exploit) → copy the donor's checkpoint into
  `exploits/` and continue from the copy with the perturbed params.
- under `ray.storage`, before the first step of a trial with nothing to continue from: the newest checkpoint
  the storage holds of it, or for a trial re-attached on resume (its config names its previous incarnation,
  `hpo.backends.ray_storage.PREVIOUS_KEY`) what that incarnation left: its scratch folder on this node or its
  newest stored checkpoint, validations replayed as above.
- `step()`: starts (or thaws) the trainer, waits for its next validation, FREEZES the trainer (SIGSTOP) and
  returns the result, so while the scheduler decides the trainer has trained no further than the
  checkpoint it just wrote. A result carries `epoch` (TAO's 0-based index, as in status.json and the
  checkpoint name), `epochs_trained` (the scheduler's time attribute) and the whole status line under
  `validation`; the one with epochs_trained == budget has done=True (the trainer then finishes).
- `save_checkpoint()`: writes a tiny pointer {trial_id, trial_dir, checkpoint, epoch, step, validation}. With a
  shared workspace the trainer's own checkpoint stays in the trial folder, which every node reads; with
  `ray.storage` (no shared filesystem) the trial folder is node-local scratch and the checkpoint file,
  status.json and spec.yaml travel inside Ray's checkpoint through the storage (`hpo.backends.ray_storage`).
- `cleanup()`: the trainer is stopped cleanly with SIGTERM (a frozen one is thawed to handle it); one that
  reached the budget is allowed to finish.
A failure is written to `outcome.json` (class + reason, read by the driver's callback; with `ray.storage` also
beside the trial's Ray checkpoints, so a restart on another node sees it) and raised.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from ray import tune

from hpo.backends.ray_storage import (
    KEEP_RANK_KEY,
    OUTCOME_FILE,
    PREVIOUS_KEY,
    TRAVELLING_FILES,
    ClusterStorage,
    Incarnation,
    cluster_storage,
    drop_scratch_checkpoints,
    fetch_newest_checkpoint,
    fetch_stored_checkpoint,
    keep_rank,
    pack_checkpoint,
    previous_incarnation,
    read_outcome,
    read_pointer,
    stage_on_this_node,
    stored_checkpoints,
    take_over_scratch,
    unpack_checkpoint,
    write_outcome,
)
from hpo.driver.context import SweepContext, plain
from hpo.trials.failures import Failure
from hpo.trials.lifecycle import build_process, final_state
from hpo.trials.record import FAILED, FINISHED_STATES, TrialRecord
from hpo.trials.runner import TrainerProcess
from skillkit.checkpoints import checkpoint_for, checkpoint_name
from skillkit.status import STATUS_FILE, Validation, read_validations

# Under PBT the whole configuration travels as one JSON string: Ray's variant generator and PBT treat nested
# dicts as spaces to merge into, and a conditional space must be drawn (and perturbed) as a whole.
PBT_PARAMS_KEY = "params_json"


def _node_id() -> str | None:
    """The Ray node this trial runs on (recorded, so a trial moved off a lost node shows where it went)."""
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker (unit tests drive the trainable directly)
        return None


class TrialFailed(RuntimeError):
    """A trainer run failed; the message starts with the failure class."""


def params_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's dotted params from a Ray config (flat, or one JSON string under PBT_PARAMS_KEY); the
    previous incarnation a re-attached trial's config names (`PREVIOUS_KEY`) is not a param."""
    packed = config.get(PBT_PARAMS_KEY)
    if isinstance(packed, str):
        return plain(json.loads(packed))
    return plain({key: value for key, value in config.items() if key != PREVIOUS_KEY})


def pack_params(params: Mapping[str, Any]) -> str:
    return json.dumps(plain(dict(params)), sort_keys=True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _position(pointer: Mapping[str, Any]) -> tuple[int, int]:
    """(epoch, step) of a stored checkpoint's pointer, comparable with a validation's."""
    return _int(pointer.get("epoch")), _int(pointer.get("step"))


def _recorded_final_state(trial_dir: Path) -> TrialRecord | None:
    try:
        record = TrialRecord.load(trial_dir)
    except (OSError, ValueError, KeyError):
        return None
    return record if record.state in FINISHED_STATES else None


def _recorded_failure(trial_dir: Path) -> Failure | None:
    try:
        outcome = json.loads((trial_dir / OUTCOME_FILE).read_text())
        return Failure(outcome["failure_class"], outcome["failure_reason"])
    except (OSError, ValueError, KeyError):
        return None


class HpoTrainable(tune.Trainable):
    def setup(self, config: dict, ctx: SweepContext | None = None) -> None:
        if ctx is None:
            raise TrialFailed("internal: HpoTrainable needs the sweep context (tune.with_parameters(ctx=...))")
        self.ctx = ctx
        self.storage: ClusterStorage | None = cluster_storage(ctx)
        self.process: TrainerProcess | None = None
        self._staged = False
        self._begin(config)

    def _begin(self, config: Mapping[str, Any]) -> None:
        """State for the trial this actor now runs (a fresh actor, or a reused one after `reset_config`)."""
        self.params = params_of(config)
        # No shared filesystem: the trainer writes into this node's scratch; else into the workspace.
        self.trial_dir = (self.storage.trial_scratch(self.trial_id) if self.storage
                          else self.ctx.workspace.trial_dir(self.trial_id))
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        failed = _recorded_failure(self.trial_dir) or self._stored_failure()
        if failed is not None:
            # Tune restarts an errored trial (FailureConfig.max_failures) for a lost node; a trainer that
            # failed on its own (crash, OOM, bad data) would only fail again: end with the same failure.
            raise TrialFailed(f"{failed.failure_class}: {failed.reason}")
        self.replay: deque[Validation] = deque()
        self.last: Validation | None = None
        self.last_checkpoint: str | None = None
        self.saved_checkpoint: str | None = None  # the newest trainer checkpoint in the storage (ray.storage)
        self.resume_from: Path | None = None
        self.exploited: dict[str, Any] | None = None
        # Re-attached on `hpo resume` under ray.storage: where its previous Ray trial left its files.
        self.previous: Incarnation | None = previous_incarnation(config) if self.storage else None
        # A trial the driver had already recorded as finished, which Ray restarts because its last experiment
        # snapshot predates that (a driver killed in between): it is not trained again.
        self.recorded_final = _recorded_final_state(self.trial_dir)
        # A trial Ray restarts without a checkpoint of its own (the driver died or stopped before Ray recorded
        # one) still continues from what its folder holds -- under ray.storage, from what the storage holds
        # (looked up at its first step, once Ray has restored whatever checkpoint it has).
        self._adopt_own_progress(after_epochs=0)
        self._storage_checked = self.storage is None

    # -- resume / exploit ----------------------------------------------------------------------------------
    def _adopt_own_progress(self, after_epochs: int, trial_fs_path: str | None = None) -> None:
        """Queue our validations beyond `after_epochs` epochs trained for replay, up to the newest one with a
        checkpoint, and continue from that checkpoint. Under `ray.storage` a checkpoint this folder lacks is
        looked for in the trial's storage folder (`trial_fs_path`: a previous incarnation's; default ours)."""
        newer = [v for v in read_validations(self.trial_dir / STATUS_FILE, self.ctx.metric)
                 if v.epochs_trained > after_epochs]
        stored: list[tuple[str, dict[str, Any]]] | None = None
        while newer and checkpoint_for(self.trial_dir, newer[-1].epoch, newer[-1].step) is None:
            if self.storage is not None and self._storage is not None and newer[-1].step is not None:
                # Saved to the storage by this node (which then dropped its copy) after the experiment snapshot
                # the sweep resumed from: continue from it rather than train that epoch again.
                where = trial_fs_path or self._storage.trial_fs_path
                if stored is None:
                    stored = stored_checkpoints(self._storage.storage_filesystem, where)
                if fetch_stored_checkpoint(self._storage.storage_filesystem, where, self.trial_dir,
                                           checkpoint_name(newer[-1].epoch, newer[-1].step), stored):
                    break
            newer.pop()
        if not newer:
            return
        found = checkpoint_for(self.trial_dir, newer[-1].epoch, newer[-1].step)
        self.replay.extend(newer)
        self.resume_from = found.path if found else None

    def _adopt_stored_progress(self) -> None:
        """Under `ray.storage`, before the first step of a trial with nothing to continue from (Ray restored
        no checkpoint, this node holds none): the newest checkpoint the storage holds of it, if any."""
        self._storage_checked = True
        if self.resume_from is not None or self.last is not None or self.replay or self._storage is None:
            return
        if fetch_newest_checkpoint(self._storage.storage_filesystem, self._storage.trial_fs_path, self.trial_dir):
            self._adopt_own_progress(after_epochs=0)
        elif self.previous is not None:
            self._adopt_previous_incarnation(self.previous)

    def _adopt_previous_incarnation(self, previous: Incarnation) -> None:
        """A re-attached trial (its own storage folder is empty): continue from what its previous Ray trial
        left, as a re-attached trial does with a shared workspace (the driver moves its folder). On the node
        that ran it, its scratch folder becomes ours; the storage's newest checkpoint of it is fetched when
        this node has none of it or the storage holds a newer one (it moved to another node, which went on).
        The validations status.json then holds are replayed, up to the newest one with a checkpoint."""
        assert self.storage is not None and self._storage is not None
        take_over_scratch(self.storage.trial_scratch(previous.trial_id), self.trial_dir,
                          grace_s=self.ctx.config.trial.stop_grace_s)
        fs, where = self._storage.storage_filesystem, previous.trial_fs_path
        failed = _recorded_failure(self.trial_dir)
        if failed is None and where is not None and (outcome := read_outcome(fs, where)):
            failed = Failure(outcome["failure_class"], outcome["failure_reason"])
        if failed is not None:  # the previous incarnation's trainer failed on its own: it would fail again
            self._raise(failed)
        if where is None:  # Ray never started it, so nothing is stored; the scratch folder (if any) is all
            self._adopt_own_progress(after_epochs=0)
            return
        here = read_validations(self.trial_dir / STATUS_FILE, self.ctx.metric)
        stored = [pointer for _, pointer in stored_checkpoints(fs, where)
                  if pointer.get("trial_id") and pointer.get("checkpoint")]
        if stored and (not here or _position(stored[-1]) > (here[-1].epoch, _int(here[-1].step))):
            fetch_newest_checkpoint(fs, where, self.trial_dir)
        self._adopt_own_progress(after_epochs=0, trial_fs_path=where)

    def _stored_failure(self) -> Failure | None:
        """A trainer failure recorded beside this trial's Ray checkpoints (by whichever node ran it)."""
        if self.storage is None or self._storage is None:
            return None
        outcome = read_outcome(self._storage.storage_filesystem, self._storage.trial_fs_path)
        if not outcome:
            return None
        return Failure(outcome["failure_class"], outcome["failure_reason"])

    def load_checkpoint(self, checkpoint: dict | str | None) -> None:
        """`checkpoint`: the folder Ray downloaded (a pointer, plus the travelling files under `ray.storage`),
        or the pointer itself (experiments saved before checkpoints were folders)."""
        if not checkpoint:
            return
        folder = Path(checkpoint) if isinstance(checkpoint, str) else None
        if folder is not None:
            checkpoint = read_pointer(folder)
        assert isinstance(checkpoint, dict)
        self._halt()
        self.replay.clear()
        name = checkpoint.get("checkpoint")
        donor_dir = Path(checkpoint["trial_dir"])
        self.last = Validation.from_history(checkpoint.get("validation") or {}, self.ctx.metric)
        epoch = self.last.epoch if self.last else None
        if checkpoint["trial_id"] == self.trial_id:
            if folder is not None and self.storage is not None and not (name and (self.trial_dir / name).is_file()):
                # Restarted on a node that has not run this trial (its own was lost), or resumed after a pause:
                # continue from the checkpoint the storage holds, with the status lines written up to it.
                unpack_checkpoint(folder, self.trial_dir, names=(*TRAVELLING_FILES, *([name] if name else [])))
            self.resume_from = self.trial_dir / name if name else None
            self.last_checkpoint = self.saved_checkpoint = name
            self._adopt_own_progress(after_epochs=self.last.epochs_trained if self.last else 0)
            return
        if name is None:
            raise TrialFailed(f"internal: donor {checkpoint['trial_id']} has no checkpoint file for epoch {epoch}")
        target = self.trial_dir / "exploits" / checkpoint["trial_id"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # The donor's checkpoint came through the storage with Ray's checkpoint; with a shared workspace it is
        # read from the donor's folder.
        source = folder / name if folder is not None and (folder / name).is_file() else donor_dir / name
        shutil.copy2(source, target)
        self.resume_from = target
        self.last_checkpoint = None
        self.exploited = {"donor": checkpoint["trial_id"], "epoch": epoch, "checkpoint": name}

    def save_checkpoint(self, checkpoint_dir: str) -> str:
        last = self.last
        pointer = {
            "trial_id": self.trial_id, "trial_dir": str(self.trial_dir), "checkpoint": self.last_checkpoint,
            "epoch": last.epoch if last else None, "step": last.step if last else None,
            "validation": last.to_history() if last else None,
        }
        pack_checkpoint(Path(checkpoint_dir), pointer, self.trial_dir if self.storage else None)
        self.saved_checkpoint = self.last_checkpoint
        return checkpoint_dir

    def reset_config(self, new_config: dict) -> bool:
        """Ray reuses this actor for another trial (or for a PBT exploit): stop our trainer, start over."""
        self._halt()
        if self.storage is not None:
            drop_scratch_checkpoints(self.trial_dir, saved=self.saved_checkpoint,
                                     metric=self.ctx.metric)  # they are in the storage
        self._begin(new_config)
        return True

    # -- training ------------------------------------------------------------------------------------------
    def step(self) -> dict:
        if self.recorded_final is not None:
            return self._replay_final(self.recorded_final)
        if not self._storage_checked:
            self._adopt_stored_progress()
        if self.replay:
            return self._result(self.replay.popleft())
        done = self.last.epochs_trained if self.last else 0
        if self.process is None:
            if done >= self.ctx.max_epochs and self.last is not None:
                return self._result(self.last, repeat=True)
            self._start()
        else:
            self.process.thaw()
        assert self.process is not None
        while True:
            validation = self.process.next_validation()
            if validation is None:
                self._fail_from_exit()
            if validation.epochs_trained > done:
                break
        if validation.epochs_trained < self.ctx.max_epochs:
            self.process.freeze()
        return self._result(validation)

    def _replay_final(self, record: TrialRecord) -> dict:
        if record.state == FAILED:
            self._raise(Failure(record.failure_class or "internal", record.failure_reason or "failed before"))
        validations = read_validations(self.trial_dir / STATUS_FILE, self.ctx.metric)
        if not validations:
            self._raise(Failure("internal", "a trial recorded as finished has no validation to report"))
        result = self._result(validations[-1])
        result["done"] = True
        return result

    def _start(self) -> None:
        if self.storage is not None:
            self._stage_data_here()
        record = TrialRecord(trial_id=self.trial_id, number=0, params=self.params, metric=self.ctx.metric,
                             direction=self.ctx.direction)
        cuda = "" if self.ctx.gpus_per_trial == 0 else os.environ.get("CUDA_VISIBLE_DEVICES")
        process = build_process(self.ctx, record, self.trial_dir, resume_from=self.resume_from,
                                cuda_visible_devices=cuda, kill_with_parent=True, params=self.params)
        if isinstance(process, Failure):
            self._raise(process)
        process.start()
        self.process = process

    def _stage_data_here(self) -> None:
        """`s3://` dataset roots are staged on the node that runs the trial, once per actor."""
        if not self._staged:
            self.ctx = stage_on_this_node(self.ctx)
            self._staged = True

    def _result(self, validation: Validation, *, repeat: bool = False) -> dict:
        found = checkpoint_for(self.trial_dir, validation.epoch, validation.step)
        if not repeat:
            self.last = validation
            self.last_checkpoint = found.path.name if found else None
        result = {
            "epoch": validation.epoch, "epochs_trained": validation.epochs_trained, "step": validation.step,
            self.ctx.metric: validation.value, "kpi": dict(validation.kpi), "validation": validation.to_history(),
            "checkpoint_name": self.last_checkpoint, "done": validation.epochs_trained >= self.ctx.max_epochs,
            "node_id": _node_id(),
        }
        if self.storage is not None:  # what Ray's retention in the storage ranks this checkpoint by
            result[KEEP_RANK_KEY] = keep_rank(self.trial_dir, validation, self.ctx.metric, self.ctx.direction)
        if self.exploited is not None:
            result["exploited_from"] = json.dumps(self.exploited)
            result["params_json"] = json.dumps(self.params)
            self.exploited = None
        return result

    def _fail_from_exit(self) -> NoReturn:
        exit = self.process.exit() if self.process else None
        record = TrialRecord(trial_id=self.trial_id, number=0, params=self.params, metric=self.ctx.metric,
                             direction=self.ctx.direction)
        if self.last is not None:
            record.history.append(self.last.to_history())
        _, failure = final_state(record, exit, max_epochs=self.ctx.max_epochs, pruned=False, paused=False)
        self._raise(failure or Failure("internal", "the trainer ended without a new validation"))

    def _raise(self, failure: Failure) -> NoReturn:
        outcome = {"failure_class": failure.failure_class, "failure_reason": failure.reason}
        (self.trial_dir / OUTCOME_FILE).write_text(json.dumps(outcome))
        if self.storage is not None and self._storage is not None:
            write_outcome(self._storage.storage_filesystem, self._storage.trial_fs_path, outcome)
        raise TrialFailed(f"{failure.failure_class}: {failure.reason}")

    # -- stopping ------------------------------------------------------------------------------------------
    def _halt(self) -> None:
        process, self.process = self.process, None
        if process is None or process.ended:
            return
        finishing = self.last is not None and self.last.epochs_trained >= self.ctx.max_epochs
        if finishing:
            process.thaw()
            process.wait()
        else:
            # A clean stop (SIGTERM, then SIGCONT if frozen): the trainer checkpoints and exits. We resume
            # from the checkpoint of its last validated epoch, not from the one this stop writes.
            process.stop_and_wait()

    def cleanup(self) -> None:
        self._halt()
        if self.storage is not None:
            # This node is done with the trial: whatever it resumes from next is in the storage.
            drop_scratch_checkpoints(self.trial_dir, saved=self.saved_checkpoint,
                                     metric=self.ctx.metric)

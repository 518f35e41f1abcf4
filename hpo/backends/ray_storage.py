"""Ray on nodes that share no filesystem (`ray.storage: s3://bucket/prefix`): where a trial's files live and
how they travel. This module owns that contract; the trainable, the driver's callbacks and the backend call it.

A trial's files are in three places:

- **its scratch folder on the node running it**, `$HPO_TRIAL_SCRATCH/<sweep>/trials/<trial id>/` (default
  `<temp dir>/hpo-scratch`): the trainer's results folder (spec.yaml, status.json, train.log, checkpoints).
  No other node reads it. Once the trial stops on that node its checkpoints there are deleted up to the last
  one in the storage; the small files stay.
- **Ray's storage**, `<ray.storage>/<sweep>/experiment/`: Ray's experiment state (`hpo resume` restores
  from it) and, per trial, Ray checkpoints `<ray trial folder>/checkpoint_NNNNNN/`. Each holds the pointer
  `hpo_checkpoint.json` and the files that travel (`pack_checkpoint`): the trainer checkpoint of the trial's
  last validated epoch, its status.json and spec.yaml. Ray Tune uploads and downloads them itself (RunConfig
  `storage_path` + `storage_filesystem`, a pyarrow S3 filesystem): a trial restarted on another node after
  its node was lost, a paused trial resumed, a PBT exploit taking a donor's weights and a restored experiment
  all begin from such a checkpoint (`unpack_checkpoint`); a trial Ray restarts without one although one was
  saved (the driver stopped before Ray recorded it) begins from the newest stored (`fetch_newest_checkpoint`).
  Ray keeps each trial's best-so-far checkpoint and always its latest one, nothing else
  (`RayBackend.checkpoint_config`, ranked by `keep_rank`). A trainer failure is written beside them
  (`outcome.json`), so a restart on any node ends with the same failure instead of training again.
- **the driver's workspace**, `trials/<id>/`: trial.json (the driver writes it) and, once the trial has
  ended, its status.json, spec.yaml and the checkpoint of its best epoch fetched from the storage
  (`fetch_finished_trial`): what the summary, MLflow and promotion read, as on one machine.

A trial the driver re-attaches on `hpo resume` (it ran after Ray's last experiment snapshot, so the restored
experiment lost it; `SpaceSearcher.suggest`) gets a new Ray trial id, hence a new, empty scratch folder and
storage folder. Its Ray config names its previous incarnation (`PREVIOUS_KEY`: the old id and the storage
folder the driver recorded for it when Ray started it; Ray's default folder name,
`<trainable>_<id>_<counter>_<config tag>_<date>`, cannot be derived from the id). Before its first step the
trainable takes up what that incarnation left: on the node that ran it, its scratch folder (moved under the new
id) unless the storage holds a newer checkpoint; elsewhere, the newest checkpoint stored under the old folder.
It replays the validations that status.json holds to the scheduler and continues from that checkpoint, as a
re-attached trial does with a shared workspace. The driver fetches an ended trial's best checkpoint from the
old folder when its best epoch was trained there.

Credentials are never written anywhere: the pyarrow filesystem resolves them on each node from the standard
chain (environment, profile files, instance role), so every node needs them, as it needs the endpoint
(`AWS_ENDPOINT_URL` for an S3-compatible store).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillkit.checkpoints import is_checkpoint_name, list_checkpoints, parse_checkpoint_name
from skillkit.files import SPEC_FILE, STATUS_FILE, TRIALS_DIR
from skillkit.status import Validation, read_validations

if TYPE_CHECKING:
    import pyarrow.fs

    from hpo.driver.context import SweepContext

SCRATCH_ENV = "HPO_TRIAL_SCRATCH"
POINTER_FILE = "hpo_checkpoint.json"
OUTCOME_FILE = "outcome.json"
# Small files of a trial folder that travel with each checkpoint (the trainer checkpoint is added by name).
TRAVELLING_FILES = (STATUS_FILE, SPEC_FILE)
STORAGE_SCHEME = "s3://"
# The Ray config key naming a re-attached trial's previous incarnation (JSON: trial_id, storage); never a param.
PREVIOUS_KEY = "hpo_previous_incarnation"


# The result key Ray ranks a trial's stored checkpoints by (`keep_rank`); never a metric of the sweep.
KEEP_RANK_KEY = "hpo_keep_rank"


def keep_rank(trial_dir: Path, validation: Validation, metric: str, direction: str) -> int:
    """How much Ray's checkpoint retention should value the checkpoint of `validation` (the trial's newest):
    its epoch + 1 when it is the trial's best-so-far by the engine's rule (`hpo.selection`: earliest epoch on
    a tie, NaN never best), else 0. Ray keeps the highest-ranked and the latest, and a later checkpoint that
    ranks the same as an earlier one outranks it; so ranking by the metric itself lost the engine's best on a
    tie (three epochs at the same mIoU: Ray kept the two later ones and deleted the best). With this rank the
    highest is always the current best-so-far: an epoch that was best when validated is outranked only by a
    later epoch that beat it. `trial_dir`'s status.json holds the trial's earlier validations."""
    from hpo.selection import is_best_so_far

    earlier = [v.to_history() for v in read_validations(trial_dir / STATUS_FILE, metric) if v.epoch < validation.epoch]
    return validation.epoch + 1 if is_best_so_far(earlier, validation.to_history(), metric, direction) else 0


def scratch_root() -> Path:
    """This node's scratch root: `$HPO_TRIAL_SCRATCH`, else `<temp dir>/hpo-scratch`."""
    env = os.environ.get(SCRATCH_ENV)
    return Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "hpo-scratch"


@dataclass(frozen=True)
class ClusterStorage:
    """The `ray.storage` URI of a sweep, and what Ray Tune is handed for it."""

    uri: str
    sweep_name: str

    def filesystem(self) -> pyarrow.fs.FileSystem:
        from hpo.storage.external import pyarrow_s3_filesystem

        return pyarrow_s3_filesystem()

    @property
    def storage_path(self) -> str:
        """Ray's `storage_path` beside `filesystem()`: `bucket/prefix/<sweep>` (the experiment goes below it)."""
        from hpo.storage.external import ray_storage_path
        from hpo.storage.uri import join

        return ray_storage_path(join(self.uri, self.sweep_name))

    def trial_scratch(self, trial_id: str) -> Path:
        return scratch_root() / self.sweep_name / TRIALS_DIR / trial_id

    def check(self, filesystem: pyarrow.fs.FileSystem) -> None:
        """Prove before any trial that this process may write to the storage (a marker written, then deleted);
        a StorageError naming the URI and the cause otherwise, instead of a failure deep inside Ray."""
        from hpo.storage.s3 import resolve_endpoint
        from hpo.storage.uri import display_endpoint
        from skillkit.errors import StorageError
        from skillkit.redaction import redact

        marker = f"{self.storage_path}/.hpo-write-check-{os.getpid()}"
        try:
            with filesystem.open_output_stream(marker) as stream:
                stream.write(b"ok")
            filesystem.delete_file(marker)
        except OSError as error:
            endpoint = display_endpoint(resolve_endpoint(None))
            raise StorageError(redact(
                f"'ray.storage' = '{self.uri}' cannot be written from this machine ({endpoint}): {error}. The "
                "driver and every Ray node need credentials for it in their environment (the standard AWS "
                "variables, a profile or an instance role) and, for an S3-compatible store, AWS_ENDPOINT_URL; "
                "the bucket must exist.")) from None


def cluster_storage(ctx: SweepContext) -> ClusterStorage | None:
    """The sweep's `ray.storage`, or None when every node sees the workspace (the default)."""
    uri = ctx.config.ray.storage
    return ClusterStorage(uri=uri.rstrip("/"), sweep_name=ctx.workspace.root.name) if uri else None


def fs_uri(fs_path: str) -> str:
    """An S3 filesystem path (`bucket/key`) as the URI people read (`s3://bucket/key`)."""
    return fs_path if "://" in fs_path else STORAGE_SCHEME + fs_path.lstrip("/")


def fs_path_of(uri: str) -> str:
    return uri[len(STORAGE_SCHEME):] if uri.lower().startswith(STORAGE_SCHEME) else uri


@dataclass(frozen=True)
class Incarnation:
    """A re-attached trial's previous Ray trial: its id (its scratch folder on the node that ran it) and its
    storage folder (`trial.storage.trial_fs_path`; None when Ray never started it, so nothing was stored)."""

    trial_id: str
    trial_fs_path: str | None

    def config_entry(self) -> dict[str, str]:
        """What the searcher adds to the new trial's Ray config (a flat string: Ray treats dicts as spaces)."""
        return {PREVIOUS_KEY: json.dumps({"trial_id": self.trial_id, "storage": self.trial_fs_path}, sort_keys=True)}


def previous_incarnation(config: Mapping[str, Any]) -> Incarnation | None:
    """The previous incarnation a Ray config names (`Incarnation.config_entry`), None for any other trial."""
    packed = config.get(PREVIOUS_KEY)
    if not isinstance(packed, str):
        return None
    data = json.loads(packed)
    storage = data.get("storage")
    return Incarnation(trial_id=str(data["trial_id"]), trial_fs_path=fs_path_of(storage) if storage else None)


def take_over_scratch(old_dir: Path, trial_dir: Path, *, grace_s: float) -> bool:
    """Move a previous incarnation's scratch folder (this node ran it) into the re-attached trial's: its
    trainer, if still running (its actor not yet ended with the dead driver), is stopped first, as the driver
    does with a shared workspace; then every entry the new folder lacks moves, and the old folder goes.
    False when this node has no such folder."""
    from hpo.trials.retention import repoint_latest_link
    from hpo.trials.runner import stop_orphaned_trainer

    if not old_dir.is_dir() or old_dir.resolve() == trial_dir.resolve():
        return False
    stop_orphaned_trainer(old_dir, grace_s=grace_s)
    trial_dir.mkdir(parents=True, exist_ok=True)
    for entry in old_dir.iterdir():
        target = trial_dir / entry.name
        if not target.exists() and not target.is_symlink():
            os.replace(entry, target)
    shutil.rmtree(old_dir, ignore_errors=True)
    repoint_latest_link(trial_dir)
    return True


def stage_on_this_node(ctx: SweepContext) -> SweepContext:
    """The sweep context with its `s3://` dataset roots staged on this node (its own cache, `HPO_DATA_CACHE`;
    one download per content version, shared by the node's trials) instead of the driver's copies, which are
    on the driver's disk. Unchanged when the sweep reads no `s3://` data."""
    if not ctx.remote_base_spec:
        return ctx
    from dataclasses import replace

    from hpo.storage.staging import data_paths_for, stage_spec_sources

    keys = data_paths_for(ctx.skill.info, ctx.config.action)
    return replace(ctx, base_spec=stage_spec_sources(ctx.remote_base_spec, data_paths=keys).spec)


# -- a Ray checkpoint's contents (on the node) -------------------------------------------------------------


def pack_checkpoint(checkpoint_dir: Path, pointer: Mapping[str, Any], trial_dir: Path | None) -> None:
    """Fill a Ray checkpoint folder: the pointer, and with `trial_dir` (no shared filesystem) the files that
    travel: the trainer checkpoint the pointer names, status.json and spec.yaml. Hard links where the
    filesystem allows (Ray only reads them while uploading), copies elsewhere."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (checkpoint_dir / POINTER_FILE).write_text(json.dumps(dict(pointer), sort_keys=True))
    if trial_dir is None:
        return
    names = [*TRAVELLING_FILES, *([pointer["checkpoint"]] if pointer.get("checkpoint") else [])]
    for name in names:
        source = trial_dir / name
        if not source.is_file():
            continue
        if name == STATUS_FILE:  # still appended to by the trainer: a copy, not a link
            shutil.copyfile(source, checkpoint_dir / name)
            continue
        try:
            os.link(source, checkpoint_dir / name)
        except OSError:
            shutil.copyfile(source, checkpoint_dir / name)


def read_pointer(checkpoint_dir: Path) -> dict[str, Any]:
    return json.loads((checkpoint_dir / POINTER_FILE).read_text())


def _last_status_epoch(path: Path) -> int:
    """The newest epoch a status.json has a line for (-1: none, or no file)."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return -1
    return max((line["epoch"] for line in lines if isinstance(line.get("epoch"), int)), default=-1)


def unpack_checkpoint(checkpoint_dir: Path, target_dir: Path, *, names: tuple[str, ...]) -> list[str]:
    """Copy `names` that the Ray checkpoint folder holds into `target_dir` (the trial's scratch folder);
    returns the names copied. A status.json already there that reaches a later epoch than the checkpoint's is
    kept: this node ran the trial past its last saved checkpoint (an epoch finished while Ray stopped it),
    and the trainable replays those validations. Ray deletes its download when `load_checkpoint` returns."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        source = checkpoint_dir / name
        if not source.is_file():
            continue
        if name == STATUS_FILE and _last_status_epoch(target_dir / name) > _last_status_epoch(source):
            continue
        shutil.copyfile(source, target_dir / name)
        copied.append(name)
    return copied


def drop_scratch_checkpoints(trial_dir: Path, *, saved: str | None, metric: str) -> int:
    """Delete the trainer checkpoints in a scratch folder that are of no more use here; returns how many.
    `saved`: the newest one saved to the storage (None: none was). What stays is the checkpoint of a
    validated epoch newer than that (the trainer finished an epoch after Ray's last save, while being
    stopped): it is taken up again if the trial resumes on this node (`unpack_checkpoint`). Checkpoints the
    storage has, and mid-epoch ones a stop wrote (never resumed from), go."""
    from hpo.trials.retention import repoint_latest_link
    from skillkit.checkpoints import checkpoint_for
    from skillkit.status import read_validations

    limit = (parse_checkpoint_name(saved) if saved else None) or (-1, -1)
    keep = set()
    for validation in read_validations(trial_dir / STATUS_FILE, metric):
        found = checkpoint_for(trial_dir, validation.epoch, validation.step)
        if found is not None and (found.epoch, found.step) > limit:
            keep.add(found.path)
    count = 0
    for checkpoint in list_checkpoints(trial_dir):
        if checkpoint.path not in keep:
            checkpoint.path.unlink(missing_ok=True)
            count += 1
    repoint_latest_link(trial_dir)
    return count


# -- files beside a trial's Ray checkpoints (any node, the driver) -------------------------------------


def write_outcome(fs: pyarrow.fs.FileSystem, trial_fs_path: str, outcome: Mapping[str, Any]) -> None:
    fs.create_dir(trial_fs_path, recursive=True)
    with fs.open_output_stream(f"{trial_fs_path}/{OUTCOME_FILE}") as stream:
        stream.write(json.dumps(dict(outcome)).encode())


def read_outcome(fs: pyarrow.fs.FileSystem, trial_fs_path: str) -> dict[str, Any] | None:
    """The trainer failure recorded for a trial, None when there is none."""
    import pyarrow.fs as pafs

    path = f"{trial_fs_path}/{OUTCOME_FILE}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        try:
            return dict(json.loads(stream.read().decode()))
        except ValueError:
            return None


def stored_checkpoints(fs: pyarrow.fs.FileSystem, trial_fs_path: str) -> list[tuple[str, dict[str, Any]]]:
    """(Ray checkpoint folder, its pointer) for every checkpoint stored of a trial, oldest epoch first."""
    import pyarrow.fs as pafs

    found = []
    selector = pafs.FileSelector(trial_fs_path, allow_not_found=True)
    for info in sorted(fs.get_file_info(selector), key=lambda i: i.path):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        pointer_path = f"{info.path}/{POINTER_FILE}"
        if fs.get_file_info(pointer_path).type != pafs.FileType.File:
            continue
        with fs.open_input_stream(pointer_path) as stream:
            found.append((info.path, json.loads(stream.read().decode())))

    def order(item: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
        epoch, step = item[1].get("epoch"), item[1].get("step")
        return (epoch if isinstance(epoch, int) else -1, step if isinstance(step, int) else -1, item[0])

    return sorted(found, key=order)


def _download(fs: pyarrow.fs.FileSystem, fs_path: str, target: Path) -> bool:
    import pyarrow.fs as pafs

    if fs.get_file_info(fs_path).type != pafs.FileType.File:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")  # streamed, then renamed: never half a file
    pafs.copy_files(fs_path, str(partial), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    os.replace(partial, target)
    return True


def fetch_stored_checkpoint(fs: pyarrow.fs.FileSystem, trial_fs_path: str, trial_dir: Path, name: str,
                            stored: list[tuple[str, dict[str, Any]]] | None = None) -> bool:
    """Bring the trainer checkpoint `name` of a trial from the storage into its scratch folder (only that file);
    False when the storage holds none of that name. For a validation this node's status.json has beyond the
    checkpoint Ray restored: Ray saved it (and its node then dropped the scratch copy), but the experiment
    snapshot the sweep resumed from predates that save. `stored`: `stored_checkpoints`' answer, if known."""
    if (trial_dir / name).is_file():
        return True
    for folder, pointer in reversed(stored if stored is not None else stored_checkpoints(fs, trial_fs_path)):
        if pointer.get("checkpoint") == name and _download(fs, f"{folder}/{name}", trial_dir / name):
            return True
    return False


def fetch_newest_checkpoint(fs: pyarrow.fs.FileSystem, trial_fs_path: str, trial_dir: Path) -> str | None:
    """Bring the newest checkpoint the storage holds of a trial into its scratch folder (trainer checkpoint,
    status.json by `unpack_checkpoint`'s rule, spec.yaml); returns the trainer checkpoint's name, None when
    there is none. For a trial Ray restarts without a checkpoint although one was saved: the driver stopped
    before Ray recorded it (the trainable then continues from it, as from its own folder on one machine)."""
    stored = [(folder, pointer) for folder, pointer in stored_checkpoints(fs, trial_fs_path)
              if pointer.get("trial_id") and pointer.get("checkpoint")]
    if not stored:
        return None
    folder, pointer = stored[-1]
    name = str(pointer["checkpoint"])
    if (trial_dir / name).is_file():
        return name
    download = trial_dir / f".fetch-{os.getpid()}"
    try:
        for file in (*TRAVELLING_FILES, name):
            _download(fs, f"{folder}/{file}", download / file)
        unpack_checkpoint(download, trial_dir, names=(*TRAVELLING_FILES, name))
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return name if (trial_dir / name).is_file() else None


def fetch_finished_trial(fs: pyarrow.fs.FileSystem, trial_fs_path: str, trial_dir: Path,
                         best_checkpoint: str | None, previous: Sequence[str] = ()) -> list[str]:
    """Bring an ended trial's files from the storage into the driver's trial folder: status.json and spec.yaml
    of its newest stored checkpoint, and the trainer checkpoint `best_checkpoint` (its best epoch's, which Ray
    kept by score). Returns the names fetched; a file already there is not fetched again. `previous`: the
    storage folders of a re-attached trial's previous Ray trials (oldest first), where its best epoch may have
    been trained, and its status.json last stored if this folder holds nothing."""
    fetched = _fetch_finished(fs, trial_fs_path, trial_dir, best_checkpoint)
    for before in reversed(previous):
        if STATUS_FILE not in fetched and not (trial_dir / STATUS_FILE).is_file():
            fetched += _fetch_finished(fs, before, trial_dir, best_checkpoint)
        elif (best_checkpoint and is_checkpoint_name(best_checkpoint)
              and not (trial_dir / best_checkpoint).is_file()
              and fetch_stored_checkpoint(fs, before, trial_dir, best_checkpoint)):
            fetched.append(best_checkpoint)
    return fetched


def _fetch_finished(fs: pyarrow.fs.FileSystem, trial_fs_path: str, trial_dir: Path,
                    best_checkpoint: str | None) -> list[str]:
    stored = stored_checkpoints(fs, trial_fs_path)
    if not stored:
        return []
    fetched = []
    newest_dir = stored[-1][0]
    for name in TRAVELLING_FILES:
        if _download(fs, f"{newest_dir}/{name}", trial_dir / name):
            fetched.append(name)
    if best_checkpoint and is_checkpoint_name(best_checkpoint) and not (trial_dir / best_checkpoint).is_file():
        for folder, pointer in reversed(stored):
            if pointer.get("checkpoint") == best_checkpoint and _download(fs, f"{folder}/{best_checkpoint}",
                                                                        trial_dir / best_checkpoint):
                fetched.append(best_checkpoint)
                break
    return fetched

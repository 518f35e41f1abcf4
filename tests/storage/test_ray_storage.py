"""`hpo.backends.ray_storage` against a real moto server: what travels in a Ray checkpoint, what the driver fetches
when a trial ends, the failure record any node sees, and s3:// data staged on the node that runs a trial.
(The whole path, two Ray nodes and a lost node: tests/cluster/test_ray_cluster_storage.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import deque
from pathlib import Path

import pytest

from hpo.backends.ray_storage import (
    POINTER_FILE,
    cluster_storage,
    drop_scratch_checkpoints,
    fetch_finished_trial,
    fetch_newest_checkpoint,
    fetch_stored_checkpoint,
    keep_rank,
    pack_checkpoint,
    read_outcome,
    read_pointer,
    scratch_root,
    stage_on_this_node,
    stored_checkpoints,
    unpack_checkpoint,
    write_outcome,
)
from hpo.driver.context import prepare_sweep
from hpo.storage.external import pyarrow_s3_filesystem
from hpo.storage.sweeps import stage_sweep_data
from hpo.sweep.config import sweep_config_from_dict
from hpo.trials.runner import PID_FILE, process_start_time
from skillkit.checkpoints import checkpoint_name
from skillkit.spec import get_dotted
from skillkit.status import read_validations


def trial_folder(root: Path, epochs: int) -> Path:
    root.mkdir(parents=True)
    lines = [{"status": "RUNNING", "epoch": e, "step": 4 * (e + 1), "kpi": {"mIoU": 0.1 * (e + 1)}}
             for e in range(epochs)]
    (root / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "spec.yaml").write_text("train: {num_epochs: 4}\n")
    for epoch in range(epochs):
        (root / checkpoint_name(epoch, 4 * (epoch + 1))).write_bytes(f"weights of epoch {epoch}".encode())
    return root


@pytest.mark.parametrize(("values", "direction", "ranks"), [
    ([0.1, 0.3, 0.3, 0.3], "maximize", [1, 2, 0, 0]),  # a tie is not best: the earliest epoch stays best
    ([0.1, float("nan"), 0.2, 0.15], "maximize", [1, 0, 3, 0]),  # NaN is never best, and hides nothing
    ([2.0, 1.5, 1.7, 1.0], "minimize", [1, 2, 0, 4]),
])
def test_ray_ranks_a_checkpoint_by_whether_it_was_the_trials_best_so_far(
        tmp_path: Path, values: list[float], direction: str, ranks: list[int]) -> None:
    """Ray keeps the highest-ranked stored checkpoint and the latest; the highest rank is always the engine's
    best-so-far (hpo.selection), whatever the ties, because a later epoch ranks higher only when it beat it."""
    lines = [{"status": "RUNNING", "epoch": e, "step": e + 1, "kpi": {"val_score": v}} for e, v in enumerate(values)]
    got = []
    for count in range(1, len(lines) + 1):  # as the trainable sees it: status.json up to its newest validation
        (tmp_path / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines[:count]))
        newest = read_validations(tmp_path / "status.json", "val_score")[-1]
        got.append(keep_rank(tmp_path, newest, "val_score", direction))
    assert got == ranks


def test_a_checkpoint_carries_its_trainer_checkpoint_and_comes_back_on_another_node(tmp_path: Path) -> None:
    node_a = trial_folder(tmp_path / "a" / "t1", epochs=2)
    name = checkpoint_name(1, 8)
    pointer = {"trial_id": "t1", "trial_dir": str(node_a), "checkpoint": name, "epoch": 1}
    packed = tmp_path / "ray_checkpoint"
    pack_checkpoint(packed, pointer, node_a)
    assert sorted(p.name for p in packed.iterdir()) == sorted([POINTER_FILE, "status.json", "spec.yaml", name])
    assert read_pointer(packed) == pointer
    (node_a / "status.json").write_text("changed after the save\n")  # the trainer goes on appending
    assert (packed / "status.json").read_text() != "changed after the save\n"

    node_b = tmp_path / "b" / "t1"
    copied = unpack_checkpoint(packed, node_b, names=("status.json", "spec.yaml", name))
    assert copied == ["status.json", "spec.yaml", name]
    assert (node_b / name).read_bytes() == b"weights of epoch 1"

    shared = tmp_path / "pointer_only"
    pack_checkpoint(shared, pointer, None)  # a shared workspace: the pointer is enough
    assert [p.name for p in shared.iterdir()] == [POINTER_FILE]
    (node_a / "status.json").write_bytes((packed / "status.json").read_bytes())
    (node_a / checkpoint_name(2, 10)).write_bytes(b"mid-epoch, written on SIGTERM")  # never validated
    assert drop_scratch_checkpoints(node_a, saved=None, metric="mIoU") == 1  # none saved: only the mid-epoch one
    # a validated epoch newer than the saved checkpoint stays; the rest goes
    assert drop_scratch_checkpoints(node_a, saved=checkpoint_name(0, 4), metric="mIoU") == 1
    assert [p.name for p in node_a.glob("model_epoch_*")] == [name]
    assert drop_scratch_checkpoints(node_a, saved=name, metric="mIoU") == 1 and not list(node_a.glob("model_epoch_*"))
    assert (node_a / "spec.yaml").is_file()

    # A node that ran the trial past its last saved checkpoint keeps its newer status lines.
    ahead = trial_folder(tmp_path / "c" / "t1", epochs=3)
    assert unpack_checkpoint(packed, ahead, names=("status.json", name)) == [name]
    assert len((ahead / "status.json").read_text().splitlines()) == 3


def test_the_driver_fetches_an_ended_trials_files_and_any_node_sees_its_failure(moto_env: str, bucket: str,
                                                                                 tmp_path: Path) -> None:
    fs = pyarrow_s3_filesystem()
    trial_fs = f"{bucket}/sweeps/fx/experiment/HpoTrainable_t1"
    node = trial_folder(tmp_path / "node" / "t1", epochs=3)
    for index, epoch in enumerate((0, 2)):  # what Ray kept: the best epoch (0 here) and the latest
        name = checkpoint_name(epoch, 4 * (epoch + 1))
        local = tmp_path / f"ckpt{index}"
        pack_checkpoint(local, {"trial_id": "t1", "checkpoint": name, "epoch": epoch}, node)
        for path in local.iterdir():
            fs.create_dir(f"{trial_fs}/checkpoint_{index:06d}")
            with fs.open_output_stream(f"{trial_fs}/checkpoint_{index:06d}/{path.name}") as stream:
                stream.write(path.read_bytes())
    assert [p["epoch"] for _, p in stored_checkpoints(fs, trial_fs)] == [0, 2]

    driver = tmp_path / "ws" / "fx" / "trials" / "t1"
    fetched = fetch_finished_trial(fs, trial_fs, driver, checkpoint_name(0, 4))
    assert sorted(fetched) == sorted(["status.json", "spec.yaml", checkpoint_name(0, 4)])
    assert sorted(p.name for p in driver.glob("model_epoch_*")) == [checkpoint_name(0, 4)]
    assert len((driver / "status.json").read_text().splitlines()) == 3
    assert fetch_finished_trial(fs, f"{bucket}/sweeps/fx/experiment/never_ran", tmp_path / "none", None) == []

    # A trial Ray restarts without a recorded checkpoint continues from the newest one the storage holds.
    elsewhere = tmp_path / "other-node" / "t1"
    assert fetch_newest_checkpoint(fs, trial_fs, elsewhere) == checkpoint_name(2, 12)
    assert (elsewhere / checkpoint_name(2, 12)).read_bytes() == b"weights of epoch 2"
    assert len((elsewhere / "status.json").read_text().splitlines()) == 3 and not list(elsewhere.glob(".fetch-*"))
    assert fetch_newest_checkpoint(fs, f"{bucket}/sweeps/fx/experiment/never_ran", tmp_path / "none") is None

    # One named checkpoint, only that file (a validation the node's status.json holds beyond Ray's restore).
    named = tmp_path / "named" / "t1"
    assert fetch_stored_checkpoint(fs, trial_fs, named, checkpoint_name(2, 12))
    assert sorted(p.name for p in named.iterdir()) == [checkpoint_name(2, 12)]
    assert not fetch_stored_checkpoint(fs, trial_fs, named, checkpoint_name(1, 8))  # Ray did not keep epoch 1

    assert read_outcome(fs, trial_fs) is None
    write_outcome(fs, trial_fs, {"failure_class": "oom", "failure_reason": "CUDA out of memory"})
    assert read_outcome(fs, trial_fs) == {"failure_class": "oom", "failure_reason": "CUDA out of memory"}


def test_s3_data_is_staged_on_the_node_that_runs_the_trial(moto_env: str, dataset: dict[str, str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep_config_from_dict({
        "name": "fx", "backend": "ray", "workspace": str(tmp_path / "ws"),
        "algorithm": {"name": "random", "max_trials": 2, "max_epochs": 1},
        "datasets": {"train": dataset["train"], "eval": dataset["val"], "type": "coco_panoptic"},
        "ray": {"storage": "s3://hpo-cluster/sweeps/"},
    }, base_dir=tmp_path)
    ctx = prepare_sweep(config)
    storage = cluster_storage(ctx)
    assert storage is not None and storage.storage_path == "hpo-cluster/sweeps/fx"
    monkeypatch.setenv("HPO_TRIAL_SCRATCH", str(tmp_path / "scratch"))
    assert scratch_root() == tmp_path / "scratch"
    assert storage.trial_scratch("t1") == tmp_path / "scratch" / "fx" / "trials" / "t1"

    stage_sweep_data(ctx, cache_dir=tmp_path / "driver-cache")  # on the driver, before any trial
    driver_copy = get_dotted(ctx.base_spec, "dataset.train.img_dir")
    assert driver_copy.startswith(str(tmp_path / "driver-cache"))
    monkeypatch.setenv("HPO_DATA_CACHE", str(tmp_path / "node-cache"))  # a node: its own cache
    on_node = stage_on_this_node(ctx)
    node_copy = get_dotted(on_node.base_spec, "dataset.train.img_dir")
    assert node_copy.startswith(str(tmp_path / "node-cache")) and Path(node_copy).is_dir()
    assert get_dotted(ctx.base_spec, "dataset.train.img_dir") == driver_copy  # the driver's context is untouched


def test_a_storage_nobody_can_write_is_one_clear_error_before_any_trial(moto_env: str, bucket: str,
                                                                        tmp_path: Path, fake_secret: str) -> None:
    from hpo.backends.ray_storage import ClusterStorage
    from skillkit.errors import StorageError

    ClusterStorage(uri=f"s3://{bucket}/sweeps", sweep_name="fx").check(pyarrow_s3_filesystem())  # writable
    with pytest.raises(StorageError, match=r"'ray.storage' = 's3://no-such-bucket-hpo/sweeps' cannot be written "
                                           r"from this machine \(http://127.0.0.1:\d+\): .*the bucket must exist") as caught:
        ClusterStorage(uri="s3://no-such-bucket-hpo/sweeps", sweep_name="fx").check(pyarrow_s3_filesystem())
    assert fake_secret not in str(caught.value)


def test_a_resumed_trial_continues_from_a_checkpoint_saved_after_the_snapshot_it_resumed_from(
        moto_env: str, bucket: str, tmp_path: Path) -> None:
    """The sweep stopped after Ray saved epoch 1's checkpoint (and the node dropped its copy) but before the
    experiment snapshot recorded it: Ray restores epoch 0's. The node's status.json has epoch 1's validation,
    so the trial replays it and continues from the stored epoch-1 checkpoint instead of training epoch 1 twice
    (the CI failure `epochs_run == [1, 2, 2, 3, 4]` of tests/engine/test_ray_storage_sweeps.py)."""
    from types import SimpleNamespace

    from hpo.backends.ray_trainable import HpoTrainable

    fs = pyarrow_s3_filesystem()
    trial_fs = f"{bucket}/sweeps/fx/experiment/HpoTrainable_t2"
    node = trial_folder(tmp_path / "node" / "t2", epochs=2)
    for index, epoch in enumerate((0, 1)):
        name = checkpoint_name(epoch, 4 * (epoch + 1))
        local = tmp_path / f"save{index}"
        pack_checkpoint(local, {"trial_id": "t2", "checkpoint": name, "epoch": epoch}, node)
        for path in local.iterdir():
            with fs.open_output_stream(f"{trial_fs}/checkpoint_{index:06d}/{path.name}") as stream:
                stream.write(path.read_bytes())
    assert drop_scratch_checkpoints(node, saved=checkpoint_name(1, 8), metric="mIoU") == 2

    trainable = object.__new__(HpoTrainable)  # the resume logic alone, without a Ray actor
    trainable.ctx = SimpleNamespace(metric="mIoU")
    trainable.storage = SimpleNamespace()
    trainable._storage = SimpleNamespace(storage_filesystem=fs, trial_fs_path=trial_fs)
    trainable.trial_dir = node
    trainable.replay, trainable.resume_from = deque(), None
    trainable._adopt_own_progress(after_epochs=1)  # Ray restored epoch 0's checkpoint (1 epoch trained)
    assert [v.epoch for v in trainable.replay] == [1]
    assert trainable.resume_from == node / checkpoint_name(1, 8)
    assert trainable.resume_from.read_bytes() == b"weights of epoch 1"

    trainable.storage = None  # a shared workspace never looks in a storage: nothing newer to replay
    trainable.replay.clear()
    (node / checkpoint_name(1, 8)).unlink()
    trainable._adopt_own_progress(after_epochs=1)
    assert not trainable.replay


def store_checkpoints(fs, trial_fs: str, node: Path, trial_id: str, epochs: range, tmp_path: Path) -> None:
    """Ray checkpoints of `trial_id` for `epochs`, packed from its scratch folder `node` and uploaded to the
    trial's storage folder as Ray does (checkpoint_NNNNNN/ holding the pointer and the travelling files)."""
    written = (node / "status.json").read_text().splitlines()
    for epoch in epochs:
        name = checkpoint_name(epoch, 4 * (epoch + 1))
        local = tmp_path / f"pack-{trial_id}-{epoch}"
        # the status.json as it was at that save
        (node / "status.json").write_text("".join(line + "\n" for line in written[:epoch + 1]))
        pack_checkpoint(local, {"trial_id": trial_id, "checkpoint": name, "epoch": epoch, "step": 4 * (epoch + 1)},
                        node)
        for path in local.iterdir():
            with fs.open_output_stream(f"{trial_fs}/checkpoint_{epoch:06d}/{path.name}") as stream:
                stream.write(path.read_bytes())


def reattached_trainable(bucket: str, fs, previous: str | None, new_id: str):
    """An HpoTrainable (the resume logic alone, without a Ray actor) for Ray trial `new_id`, which the driver
    re-attached after a resume: its Ray config names its previous incarnation, as `SpaceSearcher.suggest`
    builds it."""
    from types import SimpleNamespace

    from hpo.backends.ray_storage import ClusterStorage, Incarnation, previous_incarnation
    from hpo.backends.ray_trainable import HpoTrainable, params_of

    params = {"train.optim.lr": 0.01}
    config = {**params, **Incarnation("old1", previous).config_entry()}
    assert params_of(config) == params  # what the record and MLflow see is unchanged
    trainable = object.__new__(HpoTrainable)
    trainable.ctx = SimpleNamespace(metric="mIoU", config=SimpleNamespace(trial=SimpleNamespace(stop_grace_s=5)))
    trainable.storage = ClusterStorage(uri=f"s3://{bucket}/sweeps", sweep_name="fx")
    trainable._storage = SimpleNamespace(storage_filesystem=fs,
                                         trial_fs_path=f"{bucket}/sweeps/fx/experiment/HpoTrainable_{new_id}_3_lr=0.01")
    trainable.trial_dir = trainable.storage.trial_scratch(new_id)
    trainable.trial_dir.mkdir(parents=True)
    trainable.replay, trainable.resume_from, trainable.last = deque(), None, None
    trainable.previous = previous_incarnation(config)
    return trainable


OLD_FOLDER = "sweeps/fx/experiment/HpoTrainable_old1_2_lr=0.01_2026-12-07_09-00-00"


def test_a_reattached_trial_takes_up_its_previous_scratch_folder_on_the_node_that_ran_it(
        moto_env: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: the driver died after Ray started trial old1 but before Ray's snapshot recorded it; `hpo
    resume` re-attaches it as new1. On the node that ran old1, its scratch folder (3 validated epochs, Ray
    saved 2 of them) becomes new1's: the 3 validations are replayed and training continues from epoch 2's
    checkpoint, nothing is downloaded, nothing trained twice."""
    monkeypatch.setenv("HPO_TRIAL_SCRATCH", str(tmp_path / "scratch"))
    fs = pyarrow_s3_filesystem()
    old_fs = f"{bucket}/{OLD_FOLDER}"
    old = trial_folder(scratch_root() / "fx" / "trials" / "old1", epochs=3)
    full_status = (old / "status.json").read_text()
    store_checkpoints(fs, old_fs, old, "old1", range(2), tmp_path)
    (old / "status.json").write_text(full_status)  # the trainer went on to validate epoch 2
    # A trainer of old1 still running (its actor not yet ended with the dead driver) is stopped first.
    trainer = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (old / PID_FILE).write_text(f"{trainer.pid} {process_start_time(trainer.pid)}")

    trainable = reattached_trainable(bucket, fs, f"s3://{old_fs}", "new1")
    trainable._adopt_stored_progress()
    assert trainer.wait(timeout=10) == -signal.SIGTERM
    assert [v.epoch for v in trainable.replay] == [0, 1, 2]
    assert trainable.resume_from == trainable.trial_dir / checkpoint_name(2, 12)
    assert trainable.resume_from.read_bytes() == b"weights of epoch 2"
    assert not old.exists() and (trainable.trial_dir / "spec.yaml").is_file()


def test_a_reattached_trial_on_the_same_node_takes_a_newer_stored_checkpoint_over_its_scratch_folder(
        moto_env: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """old1 ran 2 epochs on this node, was moved to another node that trained 2 more and stored them: the
    storage holds a newer checkpoint than this node's scratch folder, so new1 continues from the storage's."""
    monkeypatch.setenv("HPO_TRIAL_SCRATCH", str(tmp_path / "scratch"))
    fs = pyarrow_s3_filesystem()
    old_fs = f"{bucket}/{OLD_FOLDER}"
    other_node = trial_folder(tmp_path / "other" / "old1", epochs=4)
    store_checkpoints(fs, old_fs, other_node, "old1", range(4), tmp_path)
    trial_folder(scratch_root() / "fx" / "trials" / "old1", epochs=2)

    trainable = reattached_trainable(bucket, fs, f"s3://{old_fs}", "new1")
    trainable._adopt_stored_progress()
    assert [v.epoch for v in trainable.replay] == [0, 1, 2, 3]
    assert trainable.resume_from == trainable.trial_dir / checkpoint_name(3, 16)
    assert trainable.resume_from.read_bytes() == b"weights of epoch 3"


def test_a_reattached_trial_on_another_node_continues_from_its_previous_trials_newest_stored_checkpoint(
        moto_env: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """new1 runs on a node that never ran old1 (no scratch folder of it): it fetches the newest checkpoint
    stored under old1's storage folder, with the status.json saved beside it, replays those validations and
    continues from it. A trial Ray never started (no storage folder recorded) starts afresh."""
    monkeypatch.setenv("HPO_TRIAL_SCRATCH", str(tmp_path / "scratch"))
    fs = pyarrow_s3_filesystem()
    old_fs = f"{bucket}/{OLD_FOLDER}"
    lost_node = trial_folder(tmp_path / "lost" / "old1", epochs=3)
    store_checkpoints(fs, old_fs, lost_node, "old1", range(3), tmp_path)

    trainable = reattached_trainable(bucket, fs, f"s3://{old_fs}", "new1")
    trainable._adopt_stored_progress()
    assert [v.epoch for v in trainable.replay] == [0, 1, 2]
    assert trainable.resume_from == trainable.trial_dir / checkpoint_name(2, 12)
    assert trainable.resume_from.read_bytes() == b"weights of epoch 2"
    assert [p.name for p in trainable.trial_dir.glob("model_epoch_*")] == [checkpoint_name(2, 12)]

    never = reattached_trainable(bucket, fs, None, "new2")
    never._adopt_stored_progress()
    assert not never.replay and never.resume_from is None


def test_the_driver_fetches_a_reattached_trials_best_checkpoint_from_its_previous_trials_folder(
        moto_env: str, bucket: str, tmp_path: Path) -> None:
    """new1 continued old1 (re-attached on resume) from epoch 2; its best epoch, 1, was trained as old1, so
    that checkpoint is only under old1's storage folder. The driver's fetch takes status.json from new1's
    folder (the whole history) and the best checkpoint from old1's; with nothing under new1, both from old1's."""
    fs = pyarrow_s3_filesystem()
    old_fs, new_fs = f"{bucket}/{OLD_FOLDER}", f"{bucket}/sweeps/fx/experiment/HpoTrainable_new1_3"
    store_checkpoints(fs, old_fs, trial_folder(tmp_path / "n" / "old1", epochs=3), "old1", range(3), tmp_path)
    store_checkpoints(fs, new_fs, trial_folder(tmp_path / "n" / "new1", epochs=4), "new1", range(2, 4), tmp_path)
    best = checkpoint_name(1, 8)

    driver = tmp_path / "ws" / "trials" / "new1"
    fetched = fetch_finished_trial(fs, new_fs, driver, best, previous=[old_fs])
    assert sorted(fetched) == sorted(["status.json", "spec.yaml", best])
    assert (driver / best).read_bytes() == b"weights of epoch 1"
    assert len((driver / "status.json").read_text().splitlines()) == 4
    assert fetch_finished_trial(fs, new_fs, tmp_path / "alone", best) == ["status.json", "spec.yaml"]

    nothing_new = tmp_path / "ws" / "trials" / "new2"
    fetched = fetch_finished_trial(fs, f"{bucket}/sweeps/fx/experiment/never_ran", nothing_new, best, [old_fs])
    assert sorted(fetched) == sorted(["status.json", "spec.yaml", best])
    assert len((nothing_new / "status.json").read_text().splitlines()) == 3

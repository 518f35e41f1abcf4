"""`hpo.backends.ray_storage` against a real moto server: what travels in a Ray checkpoint, what the driver fetches
when a trial ends, the failure record any node sees, and s3:// data staged on the node that runs a trial.
(The whole path, two Ray nodes and a lost node: tests/cluster/test_ray_cluster_storage.py.)"""

from __future__ import annotations

import json
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
from skillkit.checkpoints import checkpoint_name
from skillkit.spec import get_dotted


def trial_folder(root: Path, epochs: int) -> Path:
    root.mkdir(parents=True)
    lines = [{"status": "RUNNING", "epoch": e, "step": 4 * (e + 1), "kpi": {"mIoU": 0.1 * (e + 1)}}
             for e in range(epochs)]
    (root / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "spec.yaml").write_text("train: {num_epochs: 4}\n")
    for epoch in range(epochs):
        (root / checkpoint_name(epoch, 4 * (epoch + 1))).write_bytes(f"weights of epoch {epoch}".encode())
    return root


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

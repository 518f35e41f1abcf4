"""End to end: a CPU sweep whose datasets are s3:// archives and whose workspace is an s3:// prefix,
interrupted on "machine A" and resumed from S3 alone in a fresh folder on "machine B".

Uses the engine's Python API (`prepare_sweep`, `execute`, `load_workspace_context`), the engine's fixture
trainer behind `data_trainer.py` (which fails unless the data it gets is local and complete), and the
storage calls the driver makes: `stage_sweep_data`, `WorkspaceSyncObserver`, `open_workspace`, `pull_sweep`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml

from hpo.driver.observer import SweepObserver
from hpo.storage import Storage
from skillkit.errors import StorageError
from tests.engine.fixture_skill import make_fixture_skill

HERE = Path(__file__).resolve().parent
DATA_TRAINER = HERE / "data_trainer.py"
SWEEP = "s3demo"


def make_data_skill(folder: Path) -> Path:
    """The engine's fixture skill, plus dataset inputs (TAO's data_sources layout) and the data-checking
    trainer as its train command."""
    skill = make_fixture_skill(folder)
    info_path = skill / "references" / "skill_info.yaml"
    info = yaml.safe_load(info_path.read_text())
    info["actions"]["train"]["command"] = f"{sys.executable} {DATA_TRAINER} train -e {{config_path}}"
    info["actions"]["train"]["inputs"] = {
        "dataset.train.img_dir": {"type": "folder"}, "dataset.train.annotations": {"type": "file"},
        "dataset.val.img_dir": {"type": "folder"},
    }
    info["data_sources"] = {"train": {
        "dataset.train.img_dir": {"source": "train_datasets", "path": "images.tar.gz", "runtime": "extracted_folder"},
        "dataset.train.annotations": {"source": "train_datasets", "path": "annotations.json"},
        "dataset.val.img_dir": {"source": "eval_dataset", "path": "images.tar.gz", "runtime": "extracted_folder"},
    }}
    info_path.write_text(yaml.safe_dump(info, sort_keys=False))
    template_path = skill / "references" / "spec_template_train.yaml"
    template = yaml.safe_load(template_path.read_text())
    template["dataset"] = {"train": {"img_dir": "", "annotations": ""}, "val": {"img_dir": ""}}
    template_path.write_text(yaml.safe_dump(template, sort_keys=False))
    schema_path = skill / "schemas" / "train.schema.json"
    schema = json.loads(schema_path.read_text())
    leaf = {"type": "string", "default": ""}
    schema["properties"]["dataset"] = {"type": "collection", "properties": {
        "train": {"type": "collection", "properties": {"img_dir": leaf, "annotations": leaf}},
        "val": {"type": "collection", "properties": {"img_dir": leaf}},
    }}
    schema["default"]["dataset"] = template["dataset"]
    schema_path.write_text(json.dumps(schema, indent=1))
    return skill


def upload_dataset(s3_client, bucket: str, tar_factory) -> dict[str, str]:
    names = [f"{i:04d}.jpg" for i in range(4)]
    train = tar_factory({name: f"train {name}".encode() for name in names}, top="images")
    val = tar_factory({name: f"val {name}".encode() for name in names[:2]}, top="images")
    s3_client.upload_file(str(train), bucket, "data/train/images.tar.gz")
    s3_client.put_object(Bucket=bucket, Key="data/train/annotations.json", Body=json.dumps({"images": names}).encode())
    s3_client.upload_file(str(val), bucket, "data/val/images.tar.gz")
    return {"train": f"s3://{bucket}/data/train", "val": f"s3://{bucket}/data/val"}


class InterruptAtFirstValidation(SweepObserver):
    """Plays the part of a machine going away: Ctrl-C the driver after the first trial's first epoch, so
    that trial is paused mid-way (checkpoint at epoch 1) and must go on from that checkpoint elsewhere."""

    def __init__(self) -> None:
        self.sent = False

    def trial_reported(self, trial_record, report) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("machine_b", ["same-path", "other-path"])
def test_sweep_on_s3_data_and_workspace_resumes_in_a_fresh_folder(
    machine_b: str, bucket: str, s3_client, tmp_path: Path, tar_factory, credential_scan
) -> None:
    """`same-path`: machine A's folder is deleted and B restores the sweep into an empty folder at the same
    path (e.g. the same mount point). `other-path`: B restores it somewhere else."""
    runner = pytest.importorskip("hpo.driver.runner")
    from hpo.driver.context import prepare_sweep
    from hpo.storage.sweeps import WorkspaceSyncObserver, open_workspace, pull_sweep, stage_sweep_data
    from hpo.sweep.config import load_sweep_config

    roots = upload_dataset(s3_client, bucket, tar_factory)
    skill = make_data_skill(tmp_path / "skill")
    remote = f"s3://{bucket}/sweeps"

    # -- machine A: stage from S3, run until interrupted, workspace mirrored to S3 --------------------------
    local_a, mirror_a = open_workspace(remote, local_dir=tmp_path / "machine-a")
    config_path = tmp_path / "sweep.yaml"
    config_path.write_text(yaml.safe_dump({
        "name": SWEEP, "skill_dir": str(skill), "workspace": str(local_a), "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 3, "max_epochs": 2},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1},
        "spec_overrides": {
            "fixture.sleep_s": 1.0,  # seconds per epoch: the interrupt lands inside epoch 2
            "dataset.train.img_dir": f"{roots['train']}/images.tar.gz",
            "dataset.train.annotations": f"{roots['train']}/annotations.json",
            "dataset.val.img_dir": f"{roots['val']}/images.tar.gz",
        },
        "trial": {"stop_grace_s": 10}, "tracking": {"enabled": False}, "promotion": {"enabled": False},
        "baseline": {"enabled": False}, "seed": 3,
    }, sort_keys=False))
    ctx = prepare_sweep(load_sweep_config(config_path))
    report = stage_sweep_data(ctx, cache_dir=tmp_path / "cache-a")
    assert report is not None and len(report.sources) == 3 and not any(s.cache_hit for s in report.sources)
    runner.start_workspace(ctx)
    with pytest.raises(runner.SweepInterrupted):
        runner.execute(ctx, observers=[WorkspaceSyncObserver(mirror_a, ctx.workspace.root), InterruptAtFirstValidation()],
                       use_default_observers=False)
    stored = {info.uri.split(f"/sweeps/{SWEEP}/", 1)[1] for info in Storage().list(f"{remote}/{SWEEP}")}
    assert {"sweep.yaml", "space.yaml", "data_staging.json", "summary.json", "state/optuna.db"} <= stored
    assert any(name.startswith("trials/") and name.endswith("/trial.json") for name in stored)
    assert any(name.endswith(".pth") for name in stored)
    first_summary = json.loads((ctx.workspace.root / "summary.json").read_text())
    paused = [t for t in first_summary["trials"] if t["state"] == "PAUSED"]
    assert paused and not any(t["state"] == "COMPLETED" for t in first_summary["trials"]), first_summary["trials"]

    # -- machine B: nothing local; pull the sweep from S3, stage into its own cache, resume ---------------
    shutil.rmtree(local_a)
    shutil.rmtree(tmp_path / "cache-a")
    local_b, mirror_b = open_workspace(
        remote, local_dir=tmp_path / ("machine-a" if machine_b == "same-path" else "machine-b"))
    sweep_dir = pull_sweep(mirror_b, SWEEP)
    assert sweep_dir == local_b / SWEEP
    ctx_b = runner.load_workspace_context(sweep_dir)
    report_b = stage_sweep_data(ctx_b, cache_dir=tmp_path / "cache-b")
    assert report_b is not None and all(str(tmp_path / "cache-b") in s.staged_path for s in report_b.sources)
    summary = runner.execute(ctx_b, observers=[WorkspaceSyncObserver(mirror_b, sweep_dir)], use_default_observers=False)
    mirror_b.push([SWEEP])

    assert len(summary["trials"]) == 3
    assert all(trial["state"] == "COMPLETED" for trial in summary["trials"]), [
        (t["trial_id"], t["state"], t["failure_class"], t["failure_reason"], [h["epoch"] for h in t["history"]])
        for t in summary["trials"]]
    assert summary["best"] is not None
    for trial in summary["trials"]:
        seen = [json.loads(line) for line in (sweep_dir / "trials" / trial["trial_id"] / "data_seen.jsonl").read_text().splitlines()]
        assert all(entry["train_images"] == 4 and entry["val_images"] == 2 for entry in seen)
        assert str(tmp_path / "cache-b") in seen[-1]["train_img_dir"]  # the finishing run read B's own copy
        assert not any(entry["train_img_dir"].startswith("s3://") for entry in seen)
        epochs = (sweep_dir / "trials" / trial["trial_id"] / "epochs_run.txt").read_text().split()
        assert epochs == ["1", "2"], epochs  # no epoch trained twice: the paused trial went on from its checkpoint
    resumed = (sweep_dir / "trials" / paused[0]["trial_id"] / "data_seen.jsonl").read_text().splitlines()
    assert [str(tmp_path / "cache-a") in line for line in resumed] == [True, False]  # epoch 1 on A, epoch 2 on B

    # -- S3 now holds the finished sweep; a third folder sees the same summary -------------------------------
    _, mirror_c = open_workspace(remote, local_dir=tmp_path / "machine-c")
    final = json.loads((pull_sweep(mirror_c, SWEEP) / "summary.json").read_text())
    assert [t["trial_id"] for t in final["trials"]] == [t["trial_id"] for t in summary["trials"]]
    assert all(t["state"] == "COMPLETED" for t in final["trials"])

    # Nothing written to the workspace carries credentials.
    texts = [path.read_text(errors="replace") for path in (tmp_path / "machine-c").rglob("*")
             if path.is_file() and path.suffix in (".json", ".yaml", ".jsonl", ".log")]
    assert credential_scan(*texts) == []


def test_pull_of_a_missing_sweep_is_clear(bucket: str, tmp_path: Path) -> None:
    from hpo.storage.sweeps import open_workspace, pull_sweep

    _, mirror = open_workspace(f"s3://{bucket}/sweeps", local_dir=tmp_path / "x")
    with pytest.raises(StorageError, match=rf"cannot resume from s3://{bucket}/sweeps/nope: no sweep.yaml"):
        pull_sweep(mirror, "nope")


def test_local_workspace_needs_no_mirror(tmp_path: Path) -> None:
    from hpo.storage.sweeps import open_workspace

    assert open_workspace(tmp_path / "ws") == (tmp_path / "ws", None)

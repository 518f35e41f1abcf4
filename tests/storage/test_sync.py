"""WorkspaceMirror: push a sweep workspace to S3, pull it into a fresh folder, incremental both ways."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpo.storage import Storage, WorkspaceMirror
from skillkit.errors import StorageError


def _workspace(root: Path) -> Path:
    """A workspace shaped like the engine's: sweep files, a trial with checkpoints and a latest link."""
    sweep = root / "demo"
    trial = sweep / "trials" / "t0001"
    trial.mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("name: demo\n")
    (sweep / "driver.lock").write_text("held")
    (sweep / "summary.json").write_text(json.dumps({"sweep": "demo", "trials": []}))
    (trial / "trial.json").write_text(json.dumps({"trial_id": "t0001", "state": "RUNNING"}))
    (trial / "model_epoch_001_step_00004.pth").write_bytes(os.urandom(2048))
    (trial / "mask2former_model_latest.pth").symlink_to("model_epoch_001_step_00004.pth")
    (sweep / "best").mkdir()
    (sweep / "best" / "best.json").write_text("{}")
    return root


def test_push_then_pull_into_a_fresh_folder(bucket: str, tmp_path: Path) -> None:
    local = _workspace(tmp_path / "machine-a")
    remote = f"s3://{bucket}/sweeps"
    mirror = WorkspaceMirror(local, remote)
    first = mirror.push()
    assert (first.transferred, first.links, first.deleted) == (5, 1, 0)

    keys = sorted(info.uri.split("/sweeps/")[1] for info in Storage().list(remote))
    assert keys == ["_hpo_links.json", "demo/best/best.json", "demo/summary.json", "demo/sweep.yaml",
                    "demo/trials/t0001/model_epoch_001_step_00004.pth", "demo/trials/t0001/trial.json"]

    again = mirror.push()
    assert (again.transferred, again.skipped) == (0, 5)  # nothing changed: nothing uploaded

    fresh = tmp_path / "machine-b"
    pulled = WorkspaceMirror(fresh, remote).pull()
    assert (pulled.transferred, pulled.links) == (5, 1)
    trial = fresh / "demo" / "trials" / "t0001"
    assert (trial / "model_epoch_001_step_00004.pth").read_bytes() == \
        (local / "demo" / "trials" / "t0001" / "model_epoch_001_step_00004.pth").read_bytes()
    latest = trial / "mask2former_model_latest.pth"
    assert latest.is_symlink() and os.readlink(latest) == "model_epoch_001_step_00004.pth"
    assert latest.read_bytes() == (trial / "model_epoch_001_step_00004.pth").read_bytes()
    assert not (fresh / "demo" / "driver.lock").exists()
    assert WorkspaceMirror(fresh, remote).pull().transferred == 0  # already up to date


def test_incremental_push_of_one_trial_with_delete(bucket: str, tmp_path: Path) -> None:
    local = _workspace(tmp_path / "ws")
    remote = f"s3://{bucket}/sweeps"
    mirror = WorkspaceMirror(local, remote)
    mirror.push()
    trial = local / "demo" / "trials" / "t0001"
    (trial / "model_epoch_002_step_00008.pth").write_bytes(b"epoch two")
    (trial / "mask2former_model_latest.pth").unlink()
    (trial / "mask2former_model_latest.pth").symlink_to("model_epoch_002_step_00008.pth")
    (trial / "model_epoch_001_step_00004.pth").unlink()  # the engine pruned the old checkpoint
    (local / "demo" / "summary.json").write_text("{}")  # outside the pushed scope: not uploaded yet

    report = mirror.push(["demo/trials/t0001"], delete=True)
    assert (report.transferred, report.deleted) == (1, 1)
    remote_trial = sorted(info.uri.rsplit("/", 1)[1] for info in Storage().list(f"{remote}/demo/trials/t0001"))
    assert remote_trial == ["model_epoch_002_step_00008.pth", "trial.json"]

    other = tmp_path / "other"
    WorkspaceMirror(other, remote).pull()
    assert os.readlink(other / "demo/trials/t0001/mask2former_model_latest.pth") == "model_epoch_002_step_00008.pth"
    assert (other / "demo" / "summary.json").read_text() != "{}"
    assert mirror.push([local / "demo" / "summary.json"]).transferred == 1  # absolute paths inside work too


def test_pull_updates_files_changed_remotely(bucket: str, tmp_path: Path) -> None:
    remote = f"s3://{bucket}/sweeps"
    WorkspaceMirror(_workspace(tmp_path / "a"), remote).push()
    b = WorkspaceMirror(tmp_path / "b", remote)
    b.pull()
    source = tmp_path / "new-summary.json"
    source.write_text('{"sweep": "demo", "best": 1}')
    Storage().upload(source, f"{remote}/demo/summary.json")
    report = b.pull()
    assert report.transferred == 1
    assert json.loads((tmp_path / "b" / "demo" / "summary.json").read_text())["best"] == 1


def test_mirror_errors_are_clear(bucket: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="names a whole bucket"):
        WorkspaceMirror(tmp_path, f"s3://{bucket}")
    with pytest.raises(StorageError, match="nothing is stored there"):
        WorkspaceMirror(tmp_path / "x", f"s3://{bucket}/empty").pull()
    mirror = WorkspaceMirror(tmp_path / "ws", f"s3://{bucket}/p")
    with pytest.raises(StorageError, match="not inside the workspace"):
        mirror.push(["/etc/passwd"])
    with pytest.raises(StorageError, match=r"may not contain '\.\.'"):
        mirror.push(["../escape"])


def test_links_leaving_the_workspace_are_not_restored(bucket: str, tmp_path: Path) -> None:
    remote = f"s3://{bucket}/sweeps"
    evil = tmp_path / "links.json"
    evil.write_text(json.dumps({"demo/x": "../../../etc/passwd", "demo/y": "/etc/passwd"}))
    Storage().upload(evil, f"{remote}/_hpo_links.json")
    Storage().upload(evil, f"{remote}/demo/file.txt")
    WorkspaceMirror(tmp_path / "fresh", remote).pull()
    assert not (tmp_path / "fresh" / "demo" / "x").is_symlink()
    assert not (tmp_path / "fresh" / "demo" / "y").is_symlink()


def test_local_remote_mirror_works_the_same(tmp_path: Path) -> None:
    """The mirror also takes a local folder as its remote (e.g. a shared NFS path)."""
    local = _workspace(tmp_path / "ws")
    WorkspaceMirror(local, str(tmp_path / "shared")).push()
    WorkspaceMirror(tmp_path / "restored", str(tmp_path / "shared")).pull()
    assert (tmp_path / "restored" / "demo" / "trials" / "t0001" / "mask2former_model_latest.pth").is_symlink()

"""Pre-flight: credentials, every input readable with its size, the workspace writable; a rich table."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from hpo.storage import Storage, WorkspaceMirror, render_preflight, run_preflight
from skillkit.errors import StorageError

KEYS = ["dataset.train.img_dir", "dataset.train.panoptic_json", "dataset.val.img_dir", "dataset.label_map"]


def _render(report) -> str:
    buffer = io.StringIO()
    render_preflight(report, Console(file=buffer, width=200, force_terminal=False))
    return buffer.getvalue()


def test_all_inputs_readable(bucket: str, s3_client, tmp_path: Path) -> None:
    s3_client.put_object(Bucket=bucket, Key="data/train/images.tar.gz", Body=b"x" * 2048)
    s3_client.put_object(Bucket=bucket, Key="data/train/annotations_panoptic.json", Body=b"{}")
    for name in ("a.png", "b.png"):
        s3_client.put_object(Bucket=bucket, Key=f"data/val/images/{name}", Body=b"y" * 100)
    (tmp_path / "label_map.json").write_text("[]")
    spec = {"dataset": {
        "train": {"img_dir": f"s3://{bucket}/data/train/images.tar.gz",
                  "panoptic_json": f"s3://{bucket}/data/train/annotations_panoptic.json"},
        "val": {"img_dir": f"s3://{bucket}/data/val/images/"},
        "label_map": str(tmp_path / "label_map.json"),
    }}
    report = run_preflight(spec, data_paths=KEYS, workspace=f"s3://{bucket}/sweeps")
    assert report.ok and report.uses_s3 and report.credential_source == "env"
    rows = {row["key"]: row for row in report.table_rows()}
    assert rows["dataset.train.img_dir"] == {
        "key": "dataset.train.img_dir", "location": f"s3://{bucket}/data/train/images.tar.gz", "kind": "object",
        "size": 2048, "objects": 1, "ok": True, "problem": None}
    assert (rows["dataset.val.img_dir"]["kind"], rows["dataset.val.img_dir"]["size"], rows["dataset.val.img_dir"]["objects"]) == ("prefix", 200, 2)
    assert rows["dataset.label_map"]["kind"] == "local-file"
    assert rows["(workspace)"]["ok"]
    assert report.total_bytes == 2048 + 2 + 200 + 2
    assert Storage().list(f"s3://{bucket}/sweeps") == []  # the write probe cleaned up after itself
    report.raise_for_problems()  # nothing to raise
    text = _render(report)
    assert "pre-flight passed" in text and "2.0 kB" in text and "credentials: env" in text


def test_problems_are_reported_per_input(bucket: str, s3_client, tmp_path: Path, fault_proxy) -> None:
    s3_client.put_object(Bucket=bucket, Key="locked/images.tar.gz", Body=b"z")
    spec = {"dataset": {
        "train": {"img_dir": f"s3://{bucket}/missing/images.tar.gz", "panoptic_json": "s3://Bad_Bucket/x.json"},
        "val": {"img_dir": f"s3://{bucket}/locked/images.tar.gz"},
        "label_map": str(tmp_path / "absent.json"),
    }}
    fault_proxy.fail(None, status=403, code="AccessDenied", path_contains="/locked/")
    storage = Storage(endpoint_url=fault_proxy.url)
    report = run_preflight(spec, data_paths=KEYS, storage=storage)
    assert not report.ok
    problems = {row.key: row.problem for row in report.problems}
    assert set(problems) == set(KEYS)
    assert problems["dataset.train.img_dir"] == "the object does not exist"
    assert problems["dataset.label_map"] == "no such file or folder"
    assert "not a valid bucket name" in problems["dataset.train.panoptic_json"]
    assert problems["dataset.val.img_dir"].startswith("access denied")
    with pytest.raises(StorageError, match=r"pre-flight found 4 inputs that cannot be used, so nothing was started: "
                                           rf"dataset.train.img_dir = s3://{bucket}/missing/images.tar.gz: the object does not exist"):
        report.raise_for_problems()
    text = _render(report)
    assert "pre-flight failed" in text and "access denied" in text


def test_no_credentials_is_one_clear_problem(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    report = run_preflight(locations={"dataset.train.img_dir": f"s3://{bucket}/a.tar.gz"},
                           workspace=f"s3://{bucket}/ws")
    assert report.credential_source is None
    assert [row.problem.split(" (")[0] for row in report.problems] == ["no AWS credentials were found"] * 2
    assert "credentials: none found" in _render(report)


def test_read_only_workspace_is_caught(bucket: str, fault_proxy) -> None:
    fault_proxy.fail(None, status=403, code="AccessDenied", method="PUT")
    report = run_preflight(workspace=f"s3://{bucket}/sweeps", storage=Storage(endpoint_url=fault_proxy.url))
    assert [row.key for row in report.problems] == ["(workspace)"]
    assert report.problems[0].problem.startswith("access denied")


def test_local_inputs_need_no_s3(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"123")
    report = run_preflight({"dataset": {"train": {"img_dir": str(tmp_path / "images")}}},
                           data_paths=["dataset.train.img_dir", "dataset.val.img_dir"])
    assert report.ok and not report.uses_s3
    assert [(row.kind, row.size, row.objects) for row in report.rows] == [("local-dir", 3, 1)]


def test_sqlite_is_pushed_as_a_consistent_snapshot(bucket: str, tmp_path: Path) -> None:
    """An open write transaction (a backend mid-write) must not leak half a change into the pushed copy."""
    workspace = tmp_path / "ws"
    (workspace / "state").mkdir(parents=True)
    database = workspace / "state" / "optuna.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE trials (n INTEGER)")
    connection.execute("INSERT INTO trials VALUES (1)")
    connection.commit()
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO trials VALUES (2)")  # not committed while we push
    try:
        WorkspaceMirror(workspace, f"s3://{bucket}/ws").push()
    finally:
        connection.rollback()
        connection.close()
    WorkspaceMirror(tmp_path / "restored", f"s3://{bucket}/ws").pull()
    restored = sqlite3.connect(tmp_path / "restored" / "state" / "optuna.db")
    assert restored.execute("SELECT n FROM trials").fetchall() == [(1,)]
    restored.close()

"""`hpo storage check|stage|pull|push` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hpo.cli import main

ROOTS = ["--dataset-type", "coco_panoptic"]


def _roots(dataset: dict[str, str]) -> list[str]:
    return ["--train-dataset", dataset["train"], "--eval-dataset", dataset["val"], *ROOTS]


def test_check_passes_and_reports_sizes(dataset: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    bucket = dataset["train"].split("/")[2]
    assert main(["storage", "check", *_roots(dataset), "--workspace", f"s3://{bucket}/sweeps", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["credential_source"] == "env"
    rows = {row["key"]: row for row in report["rows"]}
    assert rows["dataset.train.img_dir"]["kind"] == "object" and rows["dataset.train.img_dir"]["size"] > 0
    assert rows["(workspace)"]["ok"]


def test_check_fails_with_the_uri_and_cause(dataset: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    missing = dataset["val"].replace("/val", "/nope")
    code = main(["storage", "check", "--train-dataset", dataset["train"], "--eval-dataset", missing, *ROOTS])
    captured = capsys.readouterr()
    assert code == 6  # as for a local folder: the root is listed while the spec is filled, before any check
    assert captured.err.startswith(f"error: dataset root '{missing}' (given as eval_dataset) has no 'images.tar.gz'")
    assert "the root holds: nothing (no object under that prefix)" in captured.err


def test_stage_writes_a_local_spec(dataset: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "staged.yaml"
    assert main(["storage", "stage", *_roots(dataset), "--cache-dir", str(tmp_path / "cache"),
                 "--record-dir", str(tmp_path / "ws"), "-o", str(out)]) == 0
    staged = yaml.safe_load(out.read_text())
    assert Path(staged["dataset"]["train"]["img_dir"]).is_dir()
    assert Path(staged["dataset"]["val"]["panoptic_json"]).is_file()
    assert (tmp_path / "ws" / "data_staging.json").is_file()


def test_push_and_pull(bucket: str, tmp_path: Path) -> None:
    (tmp_path / "ws" / "demo").mkdir(parents=True)
    (tmp_path / "ws" / "demo" / "summary.json").write_text("{}")
    assert main(["storage", "push", f"s3://{bucket}/sweeps", str(tmp_path / "ws")]) == 0
    assert main(["storage", "pull", f"s3://{bucket}/sweeps", str(tmp_path / "copy"), "demo"]) == 0
    assert (tmp_path / "copy" / "demo" / "summary.json").read_text() == "{}"

"""`model.export: true` is refused by training with a clear message (it names the export graph)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mask2former.cli import main


def test_train_refuses_export_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("model:\n  export: true\n")
    code = main(["train", "-e", str(spec), f"results_dir={tmp_path / 'run'}"])
    error = capsys.readouterr().err
    assert code == 3 and "'model.export' = true" in error and "Traceback" not in error
    assert not (tmp_path / "run" / "status.json").exists()

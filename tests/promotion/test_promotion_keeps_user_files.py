"""Promoting again never deletes what the user put in best/: the old folder is moved aside (best.<time>/)
when it holds files the previous promotion did not write, and replaced when it holds only those."""

from __future__ import annotations

import json
import os

from hpo.cli import main
from hpo.promotion import promote
from tests.tracking.synthetic_sweep import default_trials, write_sweep


def _promote(sweep_dir, **kwargs):
    return promote(sweep_dir, evaluate=False, register=False, **kwargs)


def test_repromotion_replaces_its_own_files(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    _promote(sweep_dir)
    result = _promote(sweep_dir)
    assert "previous_best_kept_at" not in result.record
    assert [p.name for p in sweep_dir.iterdir() if p.name.startswith("best")] == ["best"]


def test_a_file_the_user_exported_into_best_is_kept(tmp_path, capsys):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    _promote(sweep_dir)
    onnx = sweep_dir / "best" / "mask2former.onnx"
    onnx.write_bytes(b"the user's exported graph")
    assert main(["promote", str(sweep_dir), "--no-evaluate", "--no-register"]) == 0
    out = capsys.readouterr().out
    kept = [p for p in sweep_dir.iterdir() if p.name.startswith("best.")]
    assert len(kept) == 1 and (kept[0] / "mask2former.onnx").read_bytes() == b"the user's exported graph"
    assert (kept[0] / "best.json").is_file()  # the whole earlier hand-off, as it was
    assert "kept, now" in out and kept[0].name in out.replace("\n", "")
    record = json.loads((sweep_dir / "best" / "best.json").read_text())
    assert record["previous_best_kept_at"] == str(kept[0])
    assert not (sweep_dir / "best" / "mask2former.onnx").exists()


def test_an_edited_spec_counts_as_the_users(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    _promote(sweep_dir)
    spec = sweep_dir / "best" / "export_spec.yaml"
    spec.write_text(spec.read_text() + "# my note\n")
    os.utime(spec, ns=(spec.stat().st_atime_ns, spec.stat().st_mtime_ns + 10**9))
    assert "previous_best_kept_at" in _promote(sweep_dir).record


def test_a_best_folder_promotion_never_wrote_is_kept(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    (sweep_dir / "best").mkdir()
    (sweep_dir / "best" / "notes.txt").write_text("mine")
    result = _promote(sweep_dir)
    assert (tmp_path / result.record["previous_best_kept_at"] / "notes.txt").read_text() == "mine"

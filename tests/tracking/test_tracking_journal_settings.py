"""The journal file format (torn lines, ids, offsets, run lifecycles) and the `tracking` settings."""

from __future__ import annotations

import pytest

from hpo.tracking import Journal, TrackingSettings
from skillkit.errors import SweepConfigError


def test_journal_appends_in_order_and_survives_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path)
    first = journal.append({"op": "create_run", "key": "sweep"})
    journal.append({"op": "log", "key": "sweep", "params": {"a": "1"}})
    assert first == 1
    with open(journal.path, "a") as handle:
        handle.write('{"seq": 3, "op": "log", "key": "sw')  # a crash in the middle of an append
    again = Journal(tmp_path)  # another process
    assert [e["seq"] for e in again.entries()] == [0, 1, 2]
    assert again.append({"op": "terminate", "key": "sweep", "status": "FINISHED"}) == 3
    assert [e["op"] for e in Journal(tmp_path).entries()] == ["header", "create_run", "log", "terminate"]
    assert Journal(tmp_path).journal_id == journal.journal_id and len(journal.journal_id) == 32


def test_pending_follows_the_applied_offset_and_lifecycles_are_indexed(tmp_path):
    journal = Journal(tmp_path)
    for op in ({"op": "create_run", "key": "sweep"}, {"op": "create_run", "key": "trial/a"},
               {"op": "terminate", "key": "trial/a", "status": "KILLED"}, {"op": "reopen_run", "key": "trial/a"},
               {"op": "terminate", "key": "sweep", "status": "FINISHED"}):
        journal.append(op)
    assert [e["seq"] for e in journal.pending()] == [1, 2, 3, 4, 5]
    second = journal.entries()[2]
    state = journal.load_state()
    state.update(applied=second["seq"], offset=second["_end"])
    journal.save_state(state)
    assert [e["seq"] for e in journal.pending()] == [3, 4, 5]
    state.update(offset=7)  # an offset that does not line up (state from another file): rescan safely
    journal.save_state(state)
    assert [e["seq"] for e in journal.pending()] == [3, 4, 5]
    assert journal.run_keys() == {"sweep", "trial/a"}
    assert journal.open_runs() == {"trial/a"}


def test_snapshots_are_content_addressed_and_large_files_referenced(tmp_path, monkeypatch):
    journal = Journal(tmp_path)
    stored = journal.snapshot_bytes(b"hello", "spec.yaml")
    assert journal.resolve(stored).read_bytes() == b"hello" and stored.endswith("/spec.yaml")
    assert journal.snapshot_bytes(b"hello", "spec.yaml") == stored
    big = tmp_path / "big.pth"
    big.write_bytes(b"x" * 100)
    monkeypatch.setattr("hpo.tracking.journal.SNAPSHOT_LIMIT_BYTES", 10)
    assert journal.snapshot_file(big) == str(big.resolve())


def test_default_settings_keep_everything_in_the_sweep_folder(tmp_path):
    settings = TrackingSettings.for_sweep(tmp_path / "s1", {"name": "s1"})
    assert settings.tracking_uri == f"sqlite:///{(tmp_path / 's1' / 'mlflow.db').resolve()}"
    assert settings.artifact_location == (tmp_path / "s1" / "mlartifacts").resolve().as_uri()
    assert (settings.experiment_name, settings.registered_model_name, settings.alias) == ("s1", "mask2former", "champion")
    assert settings.effective_registry_uri == settings.tracking_uri and not settings.is_server
    server = TrackingSettings.for_sweep(tmp_path, {"name": "s", "tracking": {
        "tracking_uri": "http://127.0.0.1:5000", "experiment_name": "team", "registered_model_name": "m2f",
        "model_alias": "prod", "http_timeout_s": 3, "http_max_retries": 1}})
    assert server.is_server and server.artifact_location is None
    assert (server.experiment_name, server.registered_model_name, server.alias) == ("team", "m2f", "prod")
    assert (server.http_timeout_s, server.http_max_retries) == (3.0, 1)
    # the engine writes unset names as null: defaults apply
    nulls = TrackingSettings.for_sweep(tmp_path, {"name": "s", "tracking": {
        "enabled": True, "tracking_uri": None, "experiment_name": None, "registered_model_name": None,
        "model_alias": "champion"}})
    assert nulls.registered_model_name == "mask2former" and nulls.experiment_name == "s"


@pytest.mark.parametrize("section, message", [
    ({"trackin_uri": "x"}, "unknown setting.*trackin_uri.*allowed"),
    ({"enabled": "yes"}, "'tracking.enabled' must be true or false, got 'yes'"),
    ({"tracking_uri": 5}, "'tracking.tracking_uri' must be a string, got 5"),
    ({"http_timeout_s": 0}, "'tracking.http_timeout_s' must be >= 0.1, got 0"),
    ({"http_max_retries": 1.5}, "'tracking.http_max_retries' must be an integer, got 1.5"),
    ("on", "'tracking' must be a mapping"),
])
def test_bad_tracking_settings_are_named(tmp_path, section, message):
    with pytest.raises(SweepConfigError, match=message):
        TrackingSettings.for_sweep(tmp_path, {"name": "s", "tracking": section})

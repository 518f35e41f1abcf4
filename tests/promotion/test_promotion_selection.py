"""Which trial and epoch are promoted: the best epoch (not the last) of the best successful trial."""

from __future__ import annotations

import json
import os

import pytest

from hpo.cli import main
from hpo.promotion import PromotionError, promote, select
from tests.tracking.synthetic_sweep import FakeTrial, default_trials, params, write_sweep


def _promote(sweep_dir, **kwargs):
    return promote(sweep_dir, evaluate=False, register=False, **kwargs)


def test_the_best_epoch_is_promoted_when_the_metric_peaks_early(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    result = _promote(sweep_dir)
    record = json.loads((sweep_dir / "best" / "best.json").read_text())
    assert record == json.loads(json.dumps(result.record, default=str))
    # t0 peaks at epoch 1 (its 2nd, 0.62) and ends at 0.48; t1 ends higher (0.58) but never reaches 0.62.
    assert (record["trial_id"], record["epoch"], record["step"], record["last_epoch"]) == ("t0", 1, 20, 4)
    assert record["metric"] == {"name": "mIoU", "direction": "maximize", "value": 0.62}
    assert record["params"] == params(3e-4, 6, 256)
    promoted = sweep_dir / "best" / "model_epoch_001_step_00020.pth"
    source = sweep_dir / "trials" / "t0" / "model_epoch_001_step_00020.pth"
    assert record["paths"]["checkpoint"] == str(promoted) and record["paths"]["source_checkpoint"] == str(source)
    assert os.path.samefile(promoted, source)  # hard-linked, the exact bytes the trial wrote
    assert [p.name for p in (sweep_dir / "best").glob("*.pth")] == [promoted.name]


def test_minimised_metrics_pick_the_lowest_epoch(tmp_path):
    trials = [FakeTrial("a", params(1e-4, 4, 128), [1.5, 0.9, 1.2]), FakeTrial("b", params(2e-4, 5, 136), [1.4, 1.0, 0.95])]
    sweep_dir = write_sweep(tmp_path, trials, metric="val_loss", direction="minimize", tracking={"enabled": False})
    record = _promote(sweep_dir).record
    assert (record["trial_id"], record["epoch"], record["metric"]["value"]) == ("a", 1, 0.9)


def test_pruned_and_failed_trials_never_win_and_missing_checkpoints_are_skipped(tmp_path):
    trials = [
        FakeTrial("ok", params(1e-4, 4, 128), [0.2, 0.5, 0.4], checkpoint_epochs=[0, 2]),  # epoch 1 not saved
        FakeTrial("pruned", params(2e-4, 5, 136), [0.9], state="PRUNED"),
        FakeTrial("failed", params(3e-4, 6, 144), [0.95], state="FAILED", failure_class="internal"),
    ]
    sweep_dir = write_sweep(tmp_path, trials, tracking={"enabled": False})
    record = _promote(sweep_dir).record
    assert (record["trial_id"], record["epoch"], record["metric"]["value"]) == ("ok", 2, 0.4)


def test_pinned_trial_and_epoch(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    record = _promote(sweep_dir, trial_id="t1", epoch=2, keep_all_checkpoints=True).record
    assert (record["trial_id"], record["epoch"], record["metric"]["value"]) == ("t1", 2, 0.44)
    record = _promote(sweep_dir, trial_id="t2").record  # a pruned trial may be promoted on request
    assert (record["trial_id"], record["epoch"]) == ("t2", 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"trial_id": "nope"}, "no such trial"),
    ({"trial_id": "t3"}, "FAILED"),
    ({"epoch": 2}, "--epoch needs --trial"),
    ({"trial_id": "t0", "epoch": 9}, "no validated checkpoint for that epoch"),
])
def test_promotion_errors_say_what_is_wrong(tmp_path, kwargs, message):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    with pytest.raises(PromotionError, match=message):
        _promote(sweep_dir, **kwargs)


def test_a_sweep_without_a_successful_trial_cannot_be_promoted(tmp_path):
    trials = [FakeTrial("x", params(1e-4, 4, 128), [0.1], state="FAILED", failure_class="oom")]
    sweep_dir = write_sweep(tmp_path, trials, tracking={"enabled": False})
    with pytest.raises(PromotionError, match="no promotable trial.*x=FAILED"):
        select(json.loads((sweep_dir / "summary.json").read_text())["trials"], sweep_dir, "mIoU", "maximize")


def test_promote_cli(tmp_path, capsys):
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    assert main(["promote", str(tmp_path), "--no-evaluate"]) == 0  # the workspace holds one sweep
    out = capsys.readouterr().out
    assert "promoted trial t0 epoch 1" in out and "export_spec" in out
    assert (sweep_dir / "best" / "best.json").is_file()
    assert main(["promote", str(sweep_dir), "--trial", "t9", "--no-evaluate"]) == 2
    assert "--trial t9: no such trial" in capsys.readouterr().err


def test_a_sweep_recorded_before_tao_numbering_promotes_the_file_it_wrote(tmp_path):
    """The compatibility reader for old sweeps: their trial.json counted completed epochs (no
    `epoch_numbering` key) and named the files that way; promotion reports TAO's epoch and hands off the
    file the trial actually wrote, taken from the record (no file name is parsed)."""
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False})
    summary = json.loads((sweep_dir / "summary.json").read_text())
    for trial in summary["trials"]:
        trial.pop("epoch_numbering")
        for entry in trial["history"]:
            old_name = f"model_epoch_{entry['epoch'] + 1:03d}_step_{entry['step']:05d}.pth"
            folder = sweep_dir / "trials" / trial["trial_id"]
            if (folder / entry["checkpoint"]).exists():
                (folder / entry["checkpoint"]).rename(folder / old_name)
            entry.update(epoch=entry["epoch"] + 1, checkpoint=old_name)
        (sweep_dir / "trials" / trial["trial_id"] / "trial.json").write_text(json.dumps(trial))
    (sweep_dir / "summary.json").write_text(json.dumps(summary))
    record = _promote(sweep_dir).record
    assert (record["trial_id"], record["epoch"], record["step"]) == ("t0", 1, 20)
    assert record["paths"]["source_checkpoint"].endswith("model_epoch_002_step_00020.pth")
    assert (sweep_dir / "best" / "model_epoch_002_step_00020.pth").is_file()

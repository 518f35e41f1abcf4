"""The live table and `hpo status`: "best so far" is what promotion would pick, and the plots are named at
the end (or why one was not drawn)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from hpo.driver.live import render_outcome, trials_table
from hpo.trials.record import COMPLETED, PRUNED, RUNNING, TrialRecord


def _record(number: int, state: str, values: list[float]) -> TrialRecord:
    record = TrialRecord(trial_id=f"trial_{number:04d}", number=number, params={}, metric="mIoU", direction="maximize")
    record.history = [{"epoch": e, "kpi": {"mIoU": v}} for e, v in enumerate(values)]  # TAO epoch indices
    record._update_best()
    record.state = state
    return record


def _rows(records: list[TrialRecord]) -> list[list[str]]:
    console = Console(record=True, width=200)
    console.print(trials_table(records, metric="mIoU", direction="maximize", max_epochs=3))
    lines = [line for line in console.export_text().splitlines() if "trial_" in line]
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]


def test_best_so_far_counts_only_what_promotion_would_pick() -> None:
    rows = _rows([_record(0, RUNNING, [0.02]), _record(1, COMPLETED, [0.05, 0.0867, 0.07]),
                  _record(2, PRUNED, [0.0889]), _record(3, COMPLETED, [0.06, 0.09, 0.08])])
    best_so_far = [row[5] for row in rows]
    assert best_so_far == ["-", "0.0867", "0.0867", "0.0900"]  # the pruned 0.0889 never leads
    assert rows[2][4] == "0.0889"  # its own best is still shown


def test_outcome_names_the_plots_and_why_one_was_not_drawn(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "plots.json").write_text(json.dumps({
        "folder": str(tmp_path / "plots"), "drawn": ["optimization_history", "learning_curves"],
        "skipped": {"param_importances": "needs 3 trials with different parameters validated at one budget"},
        "compared_on": None}))
    console = Console(record=True, width=300)
    render_outcome({"sweep": "s", "status": "finished", "counts": {"COMPLETED": 1}, "metric": "mIoU"}, console,
                   sweep_dir=tmp_path)
    text = console.export_text()
    assert f"plots: optimization_history, learning_curves in {tmp_path / 'plots'}/" in text
    assert "plot param_importances not drawn: needs 3 trials with different parameters validated at one budget" in text


def test_eta_comes_from_the_epoch_times_observed(tmp_path: Path) -> None:
    from hpo.driver.live import trial_eta

    trial = tmp_path / "trial_0000"
    trial.mkdir()
    lines = [{"date": "2026-01-01", "time": "10:00:00", "status": "STARTED"},
             {"date": "2026-01-01", "time": "10:00:12", "status": "RUNNING", "epoch": 0, "time_per_epoch": 2.0},
             {"date": "2026-01-01", "time": "10:00:15", "status": "RUNNING", "epoch": 1, "time_per_epoch": 3.0}]
    (trial / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    written = (trial / "status.json").stat().st_mtime
    assert trial_eta(trial, epochs_done=2, max_epochs=6, fallback_epoch_s=None, now=written) == 10.0  # 4 x 2.5 s
    assert trial_eta(trial, epochs_done=2, max_epochs=6, fallback_epoch_s=None, now=written + 4) == 6.0
    empty = tmp_path / "trial_0001"
    empty.mkdir()
    assert trial_eta(empty, epochs_done=0, max_epochs=6, fallback_epoch_s=1.5, now=0.0) == 9.0  # the sweep's mean
    assert trial_eta(empty, epochs_done=0, max_epochs=6, fallback_epoch_s=None) is None  # unknown, never guessed

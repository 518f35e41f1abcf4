"""End-of-sweep plots (from an Optuna study rebuilt out of summary.json) and `hpo compare` across sweeps."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from hpo.cli import main
from hpo.tracking import MlflowObserver
from hpo.tracking.compare import compare
from hpo.tracking.plots import PLOTS, best_so_far, make_plots, read_plot_set, study_from_summary
from tests.tracking.synthetic_sweep import FakeTrial, default_trials, params, replay_into, write_sweep


def test_study_rebuilt_from_a_ray_summary_has_values_curves_and_states(tmp_path):
    sweep_dir = write_sweep(tmp_path, default_trials(), backend="ray", algorithm="asha")
    summary = json.loads((sweep_dir / "summary.json").read_text())
    study = study_from_summary(summary, space=yaml.safe_load((sweep_dir / "space.yaml").read_text()))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert trials[0].value == pytest.approx(0.62) and trials[1].value == pytest.approx(0.58)
    assert trials[0].intermediate_values == {1: 0.30, 2: 0.62, 3: 0.55, 4: 0.50, 5: 0.48}
    assert trials[0].params["train.optim.lr"] == pytest.approx(3e-4)
    assert study.best_trial.user_attrs["trial_id"] == "t0"
    assert trials[0].distributions["train.optim.lr"].log  # the compiled space's scale, not a guess
    assert trials[0].distributions["model.mask_former.hidden_dim"].step == 8
    inferred = study_from_summary(summary).get_trials()[0].distributions  # no space file: ranges from the values
    assert inferred["train.optim.lr"].low == pytest.approx(3e-4) and inferred["train.optim.lr"].high == pytest.approx(1e-3)


def test_plots_are_written_as_png_and_html_and_logged_on_the_parent_run(tmp_path, migrated_sqlite_db):
    (tmp_path / "sweep_p").mkdir()
    shutil.copyfile(migrated_sqlite_db, tmp_path / "sweep_p" / "mlflow.db")
    trials = default_trials() + [
        FakeTrial("t4", params(2e-5, 8, 200), [0.25, 0.40, 0.41]),
    ]
    sweep_dir = write_sweep(tmp_path, trials, name="sweep_p", tracking={"retry_interval_s": 0})
    replay_into(MlflowObserver(sweep_dir, plots=True), sweep_dir)
    for name in PLOTS:
        png, html = sweep_dir / "plots" / f"{name}.png", sweep_dir / "plots" / f"{name}.html"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        text = html.read_text()
        assert "<html" in text and "plotly" in text.lower(), name
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep_p")
    parent = client.search_runs([experiment.experiment_id], "tags.`hpo.run_kind` = 'sweep'")[0]
    logged = {item.path for item in client.list_artifacts(parent.info.run_id, "plots")}
    assert logged == {f"plots/{name}.{ext}" for name in PLOTS for ext in ("png", "html")}
    assert not any(key.startswith("hpo.plot_skipped") for key in parent.data.tags)


def test_plots_that_cannot_be_drawn_are_skipped_with_a_reason(tmp_path):
    trials = [FakeTrial("only", params(1e-3, 4, 128), [0.1, 0.2])]
    sweep_dir = write_sweep(tmp_path, trials)
    plots = make_plots(json.loads((sweep_dir / "summary.json").read_text()), tmp_path / "plots")
    assert set(plots.skipped) == {"parallel_coordinate", "param_importances"}
    assert plots.skipped["param_importances"] == (
        "needs 3 trials with different parameters validated at one budget; this sweep has 1 completed and no epoch "
        "3 trials reached")
    assert {p.name for p in plots.files} == {"optimization_history.png", "optimization_history.html",
                                             "learning_curves.png", "learning_curves.html"}
    recorded = read_plot_set(tmp_path / "plots")
    assert recorded["drawn"] == ["optimization_history", "learning_curves"]
    assert recorded["skipped"] == plots.skipped


def test_pruned_trials_are_in_the_history_and_parameters_are_compared_at_one_budget(tmp_path):
    """The quickstart's shape: one completed trial, the others pruned after 1-2 epochs. The history shows every
    trial (pruned ones apart, at their best reported value); the compared plots use epoch index 1 (TAO's 0-based
    numbering: the 2nd epoch), which three reached, never a pruned trial's first-epoch value beside a completed
    trial's third-epoch one."""
    trials = [FakeTrial("a", params(1e-4, 4, 128), [0.05, 0.08, 0.07]),
              FakeTrial("b", params(2e-3, 5, 136), [0.04, 0.01], state="PRUNED"),
              FakeTrial("c", params(1e-3, 6, 144), [0.09, 0.06], state="PRUNED"),
              FakeTrial("d", params(5e-4, 7, 152), [0.03], state="PRUNED")]
    sweep_dir = write_sweep(tmp_path, trials)
    summary = json.loads((sweep_dir / "summary.json").read_text())
    plots = make_plots(summary, tmp_path / "plots")
    assert plots.skipped == {}
    assert plots.basis == "mIoU at epoch 1, the last epoch 3 trials reached"
    history = (tmp_path / "plots" / "optimization_history.html").read_text()
    assert "pruned (best before it was stopped)" in history and "best so far (what promotion picks)" in history
    assert "c (pruned at epoch 1)" in history  # its last epoch index
    assert "pruned here" in (tmp_path / "plots" / "learning_curves.html").read_text()
    # "best so far" is what promotion would pick: c's 0.09 (pruned) never leads, a's 0.08 (completed) does.
    assert best_so_far(summary) == [(0, 0.08), (1, 0.08), (2, 0.08), (3, 0.08)]


def _two_sweeps(tmp_path, migrated_sqlite_db):
    workspace = tmp_path / "ws"
    for name in ("asha_run", "tpe_run"):
        (workspace / name).mkdir(parents=True)
        shutil.copyfile(migrated_sqlite_db, workspace / name / "mlflow.db")
    first = write_sweep(workspace, default_trials(), name="asha_run", backend="ray", algorithm="asha",
                        tracking={"tracking_uri": f"sqlite:///{workspace / 'shared.db'}", "retry_interval_s": 0})
    better = [FakeTrial("b0", params(1e-4, 5, 136), [0.5, 0.7, 0.71], gpus=2, hours=1.0),
              FakeTrial("b1", params(2e-4, 7, 144), [0.1], state="PRUNED", gpus=2, hours=0.25)]
    second = write_sweep(workspace, better, name="tpe_run",
                         tracking={"tracking_uri": f"sqlite:///{workspace / 'shared.db'}", "retry_interval_s": 0})
    return workspace, first, second


def test_compare_reads_workspaces_and_experiments_alike(tmp_path, migrated_sqlite_db, capsys):
    workspace, first, second = _two_sweeps(tmp_path, migrated_sqlite_db)
    shutil.copyfile(migrated_sqlite_db, workspace / "shared.db")
    from_files = compare([str(workspace)])
    assert [row.sweep for row in from_files] == ["asha_run", "tpe_run"]
    asha, tpe = from_files
    assert (asha.best, asha.best_trial, asha.best_epoch) == (pytest.approx(0.62), "t0", 1)
    assert (asha.trials, asha.completed, asha.pruned, asha.failed) == (4, 2, 1, 1)
    assert asha.gpu_hours == pytest.approx(2.0) and tpe.gpu_hours == pytest.approx(2.5)
    assert tpe.best_params == params(1e-4, 5, 136)

    for sweep_dir in (first, second):
        replay_into(MlflowObserver(sweep_dir, plots=False), sweep_dir)
    uri = f"sqlite:///{workspace / 'shared.db'}"
    from_mlflow = compare(["asha_run", "tpe_run"], tracking_uri=uri)
    for a, b in zip(from_files, from_mlflow):
        assert (a.sweep, a.best_trial, a.best_epoch, a.trials, a.completed, a.pruned, a.failed) == (
            b.sweep, b.best_trial, b.best_epoch, b.trials, b.completed, b.pruned, b.failed)
        assert a.best == pytest.approx(b.best) and a.gpu_hours == pytest.approx(b.gpu_hours)
        assert a.best_params == b.best_params

    out = tmp_path / "compare.csv"
    assert main(["compare", "asha_run", str(second), "--tracking-uri", uri, "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "asha_run" in printed and "tpe_run" in printed and "0.7100" in printed
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["sweep"] for r in rows] == ["asha_run", "tpe_run"]
    assert rows[1]["best"] == "0.71" and rows[1]["pruned"] == "1" and rows[1]["gpu_hours"] == "2.5"
    assert json.loads(rows[0]["best_params"])["model.mask_former.hidden_dim"] == 256


def test_compare_errors_name_the_target(tmp_path, migrated_sqlite_db, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["compare", "no_such_experiment"]) == 8
    assert "--tracking-uri" in capsys.readouterr().err
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    shutil.copyfile(migrated_sqlite_db, tmp_path / "x.db")
    assert main(["compare", "no_such_experiment", "--tracking-uri", uri]) == 8
    assert "'no_such_experiment' does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 8
    assert "holds no sweep" in capsys.readouterr().err

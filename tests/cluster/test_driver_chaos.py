"""Faults change nothing (issue 14, item 4), CI form: the Optuna-backed driver of a fixture sweep is killed
at 5 random points (SIGKILL or SIGTERM) and resumed each time; the finished sweep has lost no trial, trained
no epoch twice, holds every validation its trainers wrote, and made the same decisions — same trials, params,
states and champion — as the uninterrupted run with the same seed, every pruning decision the one ASHA's rule
gives for the reports held. The full form (20 kill points, both backends, another core busy) is
`python benchmarks/driver_chaos.py`."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "driver_chaos.py"


def load_chaos():  # noqa: ANN201 - the benchmark module
    spec = importlib.util.spec_from_file_location("driver_chaos", BENCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["driver_chaos"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_killed_and_resumed_sweep_makes_the_uninterrupted_decisions(tmp_path: Path) -> None:
    chaos = load_chaos()
    # Kill points fall 0.3-3 s after each driver start, and a start-up costs about a second of that, so each
    # driver run advances the sweep by well under its delay; 0.5 s epochs make the uninterrupted sweep last
    # several such runs even on an idle machine (with 0.2 s epochs and delays up to 4 s an idle machine
    # finished the sweep after two kills).
    result = chaos.run_chaos("optuna", kills=5, trials=5, epochs=3, epoch_s=0.5, seed=11, rng=random.Random(3),
                             work=tmp_path, max_delay_s=3.0)
    assert result.problems == []
    assert len(result.kills) >= 3, result.kills  # the sweep lasts long enough for most kill points
    assert result.trials == 5 and result.lost == 0 and result.epochs_twice == 0
    assert result.same_as_reference and result.decisions_checked == 5
    assert result.states.get("PRUNED", 0) >= 1, result.states  # the pruner did decide something


KILL_AT_SQL = Path(__file__).resolve().parents[1] / "storage" / "kill_during_sql.py"


def test_driver_killed_while_creating_its_study_file_resumes_to_the_uninterrupted_decisions(tmp_path: Path) -> None:
    """The kill point the random chaos test found under load: `hpo run` dies between Optuna creating the
    `studies` table and its unique index on the study name. Before study files were created whole, the first
    resume created the study and every later one added a second study of the same name and exited 1."""
    import subprocess

    chaos = load_chaos()
    skill = chaos.make_fixture_skill(tmp_path / "skill")
    settings = {"trials": 4, "epochs": 2, "epoch_s": 0.2, "seed": 5}
    reference_sweep = chaos.write_sweep(tmp_path / "reference", skill, "optuna", **settings)
    code, err = chaos.finish(chaos.start_driver(reference_sweep, resume=False), 300)
    assert code == 0, err
    reference = chaos.outcome(reference_sweep.folder)

    sweep = chaos.write_sweep(tmp_path / "chaos", skill, "optuna", **settings)

    def driver_killed_before(statement: str, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(KILL_AT_SQL), statement, "--hpo", *command, "--no-live"],
                              env=chaos.driver_env(), capture_output=True, text=True, timeout=300,
                              cwd=chaos.REPO, start_new_session=True)

    run = driver_killed_before("CREATE UNIQUE INDEX ix_studies_study_name", ["run", str(sweep.config)])
    assert run.returncode == -9 and "killed before: CREATE UNIQUE INDEX" in run.stderr, run.stderr[-3000:]
    assert (sweep.folder / "sweep.yaml").is_file()
    resumed = driver_killed_before("INSERT INTO trials ", ["resume", str(sweep.folder)])
    assert resumed.returncode == -9 and "killed before: INSERT INTO trials" in resumed.stderr, resumed.stderr[-3000:]

    code, err = chaos.finish(chaos.start_driver(sweep, resume=True), 300)
    assert code == 0, err[-3000:]
    result = chaos.ChaosResult(backend="optuna")
    chaos.check_final(result, sweep, reference, settings["trials"])
    assert result.problems == []
    assert result.trials == 4 and result.lost == 0 and result.epochs_twice == 0 and result.same_as_reference


def _sweep_with_histories(tmp_path: Path, backend: str, trials: list[tuple[str, list[float]]]) -> Path:
    """A sweep folder holding sweep.yaml (the chaos fixture's ASHA: grace 1, reduction factor 2, 3 epochs) and a
    summary.json whose trials hold `trials` (state, mIoU per epoch), in trial order."""
    import json

    import yaml

    chaos = load_chaos()
    config = chaos.sweep_config(tmp_path / "skill", tmp_path / "ws", backend, trials=len(trials), epochs=3,
                                epoch_s=0.1, seed=1)
    chaos.make_fixture_skill(tmp_path / "skill")
    folder = tmp_path / "ws" / "chaos"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump(config))
    summary = {"trials": [{"number": n, "trial_id": f"t{n}", "state": state,
                           "history": [{"epoch": e, "kpi": {"mIoU": v}} for e, v in enumerate(values)]}
                          for n, (state, values) in enumerate(trials)]}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_chaos_checker_gives_each_backends_own_pruning_rule_and_sees_a_decision_that_differs(
        tmp_path: Path) -> None:
    """The decision check of both backends, on reports whose rule is known: the second trial is far below the
    first at the first rung, so ASHA prunes it there (Optuna's pruner and Ray's scheduler alike); a sweep that
    held it to the end is reported as a difference, so the check can fail."""
    chaos = load_chaos()
    checkers = {"optuna": chaos.pruning_rule_states, "ray": chaos.ray_rule_states}
    for backend, checker in checkers.items():
        right = _sweep_with_histories(tmp_path / backend / "right", backend,
                                      [("COMPLETED", [0.5, 0.6, 0.7]), ("PRUNED", [0.1])])
        assert checker(right, "mIoU") == (["COMPLETED", "PRUNED"], ["COMPLETED", "PRUNED"]), backend
        wrong = _sweep_with_histories(tmp_path / backend / "wrong", backend,
                                      [("COMPLETED", [0.5, 0.6, 0.7]), ("COMPLETED", [0.1, 0.2, 0.3])])
        held, rule = checker(wrong, "mIoU")
        assert held == ["COMPLETED", "COMPLETED"] and rule == ["COMPLETED", "PRUNED"], (backend, held, rule)

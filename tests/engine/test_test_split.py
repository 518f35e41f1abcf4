"""An unbiased final score: with `datasets.test`, the top-k candidates are evaluated once on the held-out
split after the sweep, and every output (test_scores.json, summary.json, best.json, the MLflow parent and
child runs, `hpo status`, `hpo compare`) shows the selection and the test score side by side; without it the
outputs say plainly that the final score is the selection score.

The real skill's schemas, data sources and default space drive the fixture trainer; the test root carries
`fixture_eval.json`, so the fixture's evaluate scores it lower by each trial's weight decay (a test score that
differs from the validation one and reorders the candidates)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.promotion import promote
from skillkit.spec import get_dotted
from tests.engine.fixture_skill import make_real_space_skill

PENALTY = 2.0


@pytest.fixture(scope="module")
def real_skill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_real_space_skill(tmp_path_factory.mktemp("real_space_skill"))


def held_out_root(folder: Path) -> Path:
    """A coco_panoptic-shaped root (the files the evaluate data_sources table needs) marked for the fixture."""
    folder.mkdir(parents=True)
    (folder / "images").mkdir()
    (folder / "images_panoptic").mkdir()
    (folder / "annotations_panoptic.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (folder / "fixture_eval.json").write_text(json.dumps({"weight_decay_penalty": PENALTY}))
    return folder


def write_config(path: Path, skill: Path, workspace: Path, **extra: Any) -> Path:
    config = {"name": "held", "skill_dir": str(skill), "workspace": str(workspace), "backend": "optuna",
              "algorithm": {"name": "random", "max_trials": 5, "max_epochs": 2},
              "resources": {"cpus_per_trial": 1, "max_concurrent": 2}, "trial": {"stop_grace_s": 5},
              "baseline": {"enabled": False}, "seed": 5, **extra}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def hpo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "hpo"), *args], capture_output=True, text=True,
                          timeout=300)


def test_a_sweep_with_a_test_dataset_reports_selection_and_test_scores_side_by_side(real_skill: Path,
                                                                                   tmp_path: Path) -> None:
    from hpo.driver.runner import run_sweep

    test_root = held_out_root(tmp_path / "held_out")
    path = write_config(tmp_path / "sweep.yaml", real_skill, tmp_path / "ws", datasets={"test": str(test_root)},
                        promotion={"test_top_k": 3})
    summary = run_sweep(path)
    sweep_dir = tmp_path / "ws" / "held"

    top = json.loads((sweep_dir / "test_scores.json").read_text())["top_k"]
    assert [s["rank"] for s in top] == [1, 2, 3]
    assert [s["selection"] for s in top] == sorted((s["selection"] for s in top), reverse=True)
    for score in top:  # each candidate's test score is its own checkpoint scored on the held-out root
        spec = yaml.safe_load((sweep_dir / "trials" / score["trial_id"] / "spec.yaml").read_text())
        wd = get_dotted(spec, "train.optim.weight_decay")
        assert score["test"] == pytest.approx(score["selection"] * (1 - PENALTY * wd))
        evaluated = yaml.safe_load((sweep_dir / "test_eval" / score["trial_id"] / "evaluate_spec.yaml").read_text())
        assert str(test_root) in json.dumps(evaluated["dataset"]["val"])  # the test root, not the validation data
        trial_spec = json.dumps(spec)
        assert str(test_root) not in trial_spec  # no trial ever saw the test split
    assert summary["best"]["trial_id"] == top[0]["trial_id"]
    assert summary["test"]["top_k"] == top

    best = json.loads((sweep_dir / "best" / "best.json").read_text())
    scores = best["scores"]
    assert best["trial_id"] == top[0]["trial_id"] and scores["champion_rule"] == "selection"
    assert (scores["selection"], scores["test"], scores["final"], scores["final_source"]) == (
        top[0]["selection"], top[0]["test"], top[0]["test"], "test")
    assert "held-out test dataset" in scores["note"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=best["mlflow"]["tracking_uri"])
    parent = client.get_run(best["mlflow"]["parent_run_id"])
    assert parent.data.metrics["test_mIoU"] == pytest.approx(top[0]["test"])
    assert parent.data.metrics["selection_mIoU"] == pytest.approx(top[0]["selection"])
    assert parent.data.tags["hpo.final_score_source"] == "test"
    for score in top:
        child = client.get_run(json.loads((sweep_dir / "trials" / score["trial_id"] / "trial.json").read_text())[
            "mlflow_run_id"])
        assert child.data.metrics["test_mIoU"] == pytest.approx(score["test"])

    status = hpo("status", str(sweep_dir))
    assert status.returncode == 0, status.stderr
    assert "held-out test" in status.stdout and f"{top[0]['test']:.4f}" in status.stdout
    compared = hpo("compare", str(sweep_dir), "--csv", str(tmp_path / "compare.csv"))
    assert compared.returncode == 0, compared.stderr
    row = (tmp_path / "compare.csv").read_text().splitlines()
    assert "test" in row[0].split(",") and f"{top[0]['test']}"[:6] in row[1]

    # Champion by test score: promoted again from the recorded scores, without touching the test split again.
    evaluations = {s["trial_id"]: (sweep_dir / "test_eval" / s["trial_id"] / "evaluate" / "status.json").read_text()
                   for s in top}
    config = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    config["promotion"]["champion"] = "test"
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = promote(sweep_dir, register=False)
    by_test = max(top, key=lambda s: s["test"])
    assert result.record["trial_id"] == by_test["trial_id"]
    assert result.record["scores"]["champion_rule"] == "test" and "no longer an unbiased" in result.record["scores"]["note"]
    assert {t: (sweep_dir / "test_eval" / t / "evaluate" / "status.json").read_text() for t in evaluations} == evaluations
    # pinned by hand (`hpo promote --trial`): the scores measured after the sweep still stand beside each other
    pinned = promote(sweep_dir, trial_id=top[1]["trial_id"], register=False).record["scores"]
    assert (pinned["selection"], pinned["test"], pinned["final_source"]) == (top[1]["selection"], top[1]["test"], "test")


def test_without_a_test_dataset_the_outputs_say_the_final_score_is_the_selection_score(real_skill: Path,
                                                                                      tmp_path: Path) -> None:
    from hpo.driver.runner import run_sweep

    path = write_config(tmp_path / "sweep.yaml", real_skill, tmp_path / "ws", tracking={"enabled": False},
                        algorithm={"name": "random", "max_trials": 2, "max_epochs": 1})
    summary = run_sweep(path)
    sweep_dir = tmp_path / "ws" / "held"
    assert "final score is the selection score" in summary["test"]["note"] and summary["test"]["top_k"] == []
    scores = json.loads((sweep_dir / "best" / "best.json").read_text())["scores"]
    assert scores["final_source"] == "selection" and scores["test"] is None
    assert scores["final"] == scores["selection"] == summary["best"]["metric"]
    assert "final score is the selection score" in scores["note"]
    assert not (sweep_dir / "test_scores.json").exists()


def test_test_split_settings_without_a_test_dataset_are_refused_before_launch(real_skill: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "sweep.yaml", real_skill, tmp_path / "ws", promotion={"champion": "test"})
    done = hpo("plan", str(path))
    assert done.returncode != 0 and "needs a held-out test dataset" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_test_dataset_missing_its_files_is_refused_before_launch(real_skill: Path, tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "annotations_panoptic.json").write_text("{}")  # no images, no panoptic PNGs
    path = write_config(tmp_path / "sweep.yaml", real_skill, tmp_path / "ws", datasets={"test": str(incomplete)})
    done = hpo("plan", str(path))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert str(incomplete) in done.stderr + done.stdout and "images" in done.stderr + done.stdout

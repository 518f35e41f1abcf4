"""The sweep configs shipped in configs/: valid as written, and the quickstart runs end to end (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo.space import compile_space
from hpo.sweep.config import schema_problems, semantic_problems
from skillkit.skill_dir import SkillDir
from skillkit.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


@pytest.mark.parametrize("name,spec", [("quickstart", "quickstart_spec.yaml"), ("coco_panoptic_asha", "coco_panoptic_spec.yaml")])
def test_shipped_config_is_valid(name: str, spec: str) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert schema_problems(data) == []
    # Only the dataset folders (generated or mounted by the user) may be missing here.
    problems = semantic_problems(data, CONFIGS)
    assert all(problem.startswith("'datasets.") for problem in problems), problems
    assert data["base_spec"] == spec
    load_spec(CONFIGS / spec, "train", [], REPO, check_mandatory=False)
    space = compile_space(SkillDir(REPO).schema("train"), selection=data["search_space"]["parameters"],
                          custom_param_ranges=data["search_space"].get("custom_param_ranges"))
    assert sorted(p.name for p in space.parameters) == sorted(data["search_space"]["parameters"])


def test_quickstart_config_comment_matches_the_quickstart_script() -> None:
    """The synth command the quickstart config's comment shows is the one scripts/quickstart.sh runs."""
    script = (REPO / "scripts" / "quickstart.sh").read_text()
    comment = (CONFIGS / "quickstart.yaml").read_text()
    command = next(line.strip() for line in script.splitlines() if "mask2former dataset synth" in line)
    assert command in comment


def test_shipped_configs_name_their_dataset_type_and_the_readme_explains_it(tmp_path: Path) -> None:
    """`datasets.type` is optional (detected from a root's files, local or s3://) but shown in every shipped
    config, with a value the skill knows; the quickstart's is the format of the data its script writes."""
    from hpo.spec.datasources import detect_dataset_type, known_dataset_types
    from mask2former.data.synth import write_synthetic_splits

    known = known_dataset_types(SkillDir(REPO).data_sources("train"))
    for config in sorted(CONFIGS.glob("*.yaml")):
        data = yaml.safe_load(config.read_text())
        if isinstance(data, dict) and "datasets" in data:
            assert data["datasets"].get("type") in known, (config.name, known)
    script = (REPO / "scripts" / "quickstart.sh").read_text()
    fmt = script.split("mask2former dataset synth --format ", 1)[1].split()[0]  # the format the script writes
    write_synthetic_splits(tmp_path, fmt=fmt, num_train=2, num_val=1, seed=0, size=32)
    quickstart = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    assert detect_dataset_type(str(tmp_path / "train")) == quickstart["datasets"]["type"]
    readme = (REPO / "README.md").read_text()
    assert "`datasets.type`" in readme and "--dataset-type" in readme


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """The quickstart as shipped (mfbo: defaults first, Hyperband; MLflow tracking, promotion), on freshly generated
    synthetic data; its data and workspace paths point into tmp, and an epoch is one pass over the test's 8 images
    (4 steps, not the shipped 16 over 32 images) to keep CI fast. Whether the best beats the defaults on the full
    quickstart data is measured by running the quickstart itself (README), not asserted here."""
    from hpo.driver.runner import run_sweep
    from mask2former.data.synth import write_synthetic_splits

    write_synthetic_splits(tmp_path / "data", fmt="coco_panoptic", num_train=8, num_val=4, seed=0, size=64)
    data = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    data.update(skill_dir=str(REPO), base_spec=str(CONFIGS / "quickstart_spec.yaml"), workspace=str(tmp_path / "ws"),
                datasets={"train": str(tmp_path / "data" / "train"), "eval": str(tmp_path / "data" / "val")},
                spec_overrides={**data.get("spec_overrides", {}), "train.iters_per_epoch": 4})
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(data))
    summary = run_sweep(path)
    sweep_dir = tmp_path / "ws" / "quickstart"
    assert len(summary["trials"]) == 5 and summary["best"] is not None
    assert set(summary["counts"]) <= {"COMPLETED", "PRUNED"}
    comparison = summary["default_vs_best"]  # the schema defaults ran first and are reported next to the best
    assert comparison["default_trial"] == min(summary["trials"], key=lambda t: t["number"])["trial_id"]
    assert comparison["best"] >= comparison["default"]
    best = json.loads((sweep_dir / "best" / "best.json").read_text())
    assert best["trial_id"] == summary["best"]["trial_id"]
    assert (sweep_dir / "mlflow.db").is_file()
    assert {p.name for p in (sweep_dir / "plots").glob("*.png")} >= {"optimization_history.png", "learning_curves.png"}

    # The README's next commands on this CPU-only machine, exactly as printed: export, then the deploy evaluate
    # spec (ONNX Runtime). export_spec.yaml holds the tuned size, so the deployed graph sees the pixels the promoted
    # checkpoint was scored on and the two scores can be equal.
    best_dir = sweep_dir / "best"
    export = yaml.safe_load((best_dir / "export_spec.yaml").read_text())["export"]
    size = yaml.safe_load((best_dir / "train_spec.yaml").read_text())["dataset"]["augmentation"]["test_min_size"]
    assert (export["input_width"], export["input_height"]) == (size, size)
    cli = Path(sys.executable).parent
    subprocess.run([str(cli / "mask2former"), "export", "-e", str(best_dir / "export_spec.yaml")], check=True,
                   capture_output=True)
    done = subprocess.run([str(cli / "mask2former"), "evaluate", "-e", str(best_dir / "deploy_evaluate_spec.yaml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    deployed = json.loads((best_dir / "deploy" / "evaluate_onnxruntime" / "evaluation.json").read_text())
    assert deployed["metrics"]["mIoU"] == pytest.approx(best["evaluation"]["final"], abs=1e-3)

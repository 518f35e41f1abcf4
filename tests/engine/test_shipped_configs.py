"""The sweep configs shipped in configs/: valid as written, and the quickstart runs end to end (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from skillkit.skill_dir import SkillDir
from hpo.space import compile_space
from skillkit.spec import load_spec
from hpo.sweep.config import schema_problems, semantic_problems

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


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """The quickstart as shipped (TPE + successive halving, MLflow tracking, promotion), on freshly generated
    synthetic data; only its data and workspace paths point into tmp."""
    from mask2former.data.synth import write_synthetic_splits

    from hpo.sweep.runner import run_sweep

    write_synthetic_splits(tmp_path / "data", fmt="coco_panoptic", num_train=8, num_val=4, seed=0, size=64)
    data = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    data.update(skill_dir=str(REPO), base_spec=str(CONFIGS / "quickstart_spec.yaml"), workspace=str(tmp_path / "ws"),
                datasets={"train": str(tmp_path / "data" / "train"), "eval": str(tmp_path / "data" / "val")})
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(data))
    summary = run_sweep(path)
    sweep_dir = tmp_path / "ws" / "quickstart"
    assert len(summary["trials"]) == 5 and summary["best"] is not None
    assert set(summary["counts"]) <= {"COMPLETED", "PRUNED"}
    assert json.loads((sweep_dir / "best" / "best.json").read_text())["trial_id"] == summary["best"]["trial_id"]
    assert (sweep_dir / "mlflow.db").is_file()

"""A held-out test dataset on S3 (`datasets.test: s3://...`, the same formats as a folder): checked before
launch from one listing of the prefix (nothing downloaded), staged once after the sweep, and the top-k
candidates scored on the staged copy.

The real skill's schemas and data sources drive the engine's fixture trainer; the held-out root's images
archive carries `fixture_eval.json`, so the fixture's evaluate scores it lower by each trial's weight decay
(a test score that can only come from the S3 data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from skillkit.spec import get_dotted
from tests.engine.fixture_skill import make_real_space_skill

PENALTY = 2.0


def upload_held_out(s3_client: Any, bucket: str, tar_factory: Any, *, with_panoptic_pngs: bool = True) -> str:
    """A coco_panoptic seed layout under s3://<bucket>/held_out/, marked for the fixture's evaluate."""
    marker = json.dumps({"weight_decay_penalty": PENALTY}).encode()
    images = tar_factory({"000.png": b"held-out image", "fixture_eval.json": marker}, top="images")
    s3_client.upload_file(str(images), bucket, "held_out/images.tar.gz")
    if with_panoptic_pngs:
        panoptic = tar_factory({"000.png": b"held-out png"}, top="panoptic", name="images_panoptic.tar.gz")
        s3_client.upload_file(str(panoptic), bucket, "held_out/images_panoptic.tar.gz")
    s3_client.put_object(Bucket=bucket, Key="held_out/annotations_panoptic.json",
                         Body=b'{"images": [], "annotations": [], "categories": []}')
    return f"s3://{bucket}/held_out"


def write_config(path: Path, skill: Path, workspace: Path, test_root: str) -> Path:
    config = {"name": "held_s3", "skill_dir": str(skill), "workspace": str(workspace), "backend": "optuna",
              "algorithm": {"name": "random", "max_trials": 3, "max_epochs": 2},
              "datasets": {"test": test_root}, "promotion": {"test_top_k": 2},
              "resources": {"cpus_per_trial": 1, "max_concurrent": 2}, "trial": {"stop_grace_s": 5},
              "tracking": {"enabled": False}, "baseline": {"enabled": False}, "seed": 5}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_an_s3_test_dataset_is_staged_once_and_scores_the_top_k(bucket: str, s3_client: Any, tar_factory: Any,
                                                                tmp_path: Path, credential_scan: Any) -> None:
    from hpo.driver.runner import run_sweep

    root = upload_held_out(s3_client, bucket, tar_factory)
    skill = make_real_space_skill(tmp_path / "skill")
    summary = run_sweep(write_config(tmp_path / "sweep.yaml", skill, tmp_path / "ws", root))
    sweep_dir = tmp_path / "ws" / "held_s3"

    report = json.loads((sweep_dir / "test_scores.json").read_text())
    assert report["dataset"] == root and summary["test"]["dataset"] == root
    top = report["top_k"]
    assert [s["rank"] for s in top] == [1, 2] and all(s["error"] is None for s in top)
    for score in top:  # scored on the S3 data: only its archive carries the fixture's marker
        spec = yaml.safe_load((sweep_dir / "trials" / score["trial_id"] / "spec.yaml").read_text())
        assert score["test"] == pytest.approx(score["selection"] * (1 - PENALTY * get_dotted(spec, "train.optim.weight_decay")))
        assert bucket not in json.dumps(spec)  # no trial ever saw the test split
        evaluated = yaml.safe_load((sweep_dir / "test_eval" / score["trial_id"] / "evaluate_spec.yaml").read_text())
        paths = [value for key, value in evaluated["dataset"]["val"].items() if key.endswith(("_dir", "_json")) and value]
        assert paths and all("://" not in value and Path(value).exists() for value in paths), paths
        assert (Path(evaluated["dataset"]["val"]["img_dir"]) / "fixture_eval.json").is_file()  # extracted locally
    best = json.loads((sweep_dir / "best" / "best.json").read_text())["scores"]
    assert (best["test"], best["final_source"], best["test_dataset"]) == (top[0]["test"], "test", root)
    texts = [p.read_text() for p in sweep_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml", ".log")]
    assert credential_scan(*texts) == []


def test_an_s3_test_dataset_missing_a_file_is_refused_before_launch(bucket: str, s3_client: Any, tar_factory: Any,
                                                                   tmp_path: Path) -> None:
    root = upload_held_out(s3_client, bucket, tar_factory, with_panoptic_pngs=False)
    skill = make_real_space_skill(tmp_path / "skill")
    path = write_config(tmp_path / "sweep.yaml", skill, tmp_path / "ws", root)
    done = subprocess.run([str(Path(sys.executable).parent / "hpo"), "plan", str(path)], capture_output=True,
                          text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert root in output and "images_panoptic.tar.gz" in output, output[-2000:]
    assert not (tmp_path / "ws" / "held_s3" / "trials").exists() or not any((tmp_path / "ws" / "held_s3" / "trials").iterdir())

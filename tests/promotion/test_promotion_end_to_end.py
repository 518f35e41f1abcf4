"""End to end on CPU: a real sweep of tiny Mask2Former trials, promoted automatically at its end, whose final
evaluation (`mask2former evaluate -e best/evaluate_spec.yaml`, run by promotion as a subprocess) reproduces
the promoted metric; the export spec loads and validates; the registry serves the checkpoint."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.tracking.synthetic_sweep import REPO_ROOT


def _sweep_config(tmp_path: Path) -> Path:
    from mask2former.data.synth import write_synthetic_splits
    from mask2former.model.tiny import tiny_spec_overrides

    data = tmp_path / "data"
    write_synthetic_splits(data, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=64)
    overrides = dict(tiny_spec_overrides(num_classes=8))
    overrides.update({
        "model.mask_former.hidden_dim": 64, "model.mask_former.train_num_points": 256,
        "dataset.label_map": str(data / "train" / "label_map_panoptic.json"),
        "dataset.augmentation.train_min_size": [64], "dataset.augmentation.train_max_size": 128,
        "dataset.augmentation.train_crop_size": [64, 64], "dataset.augmentation.test_min_size": 64,
        "dataset.augmentation.test_max_size": 128, "dataset.pin_memory": False, "wandb.enable": False,
        "train.iters_per_epoch": 2, "train.seed": 7, "encryption_key": "e2e-secret-key-123",
    })
    for split, folder in (("train", "train"), ("val", "val")):
        root = data / folder
        overrides.update({
            f"dataset.{split}.type": "coco_panoptic",
            f"dataset.{split}.panoptic_json": str(root / "annotations_panoptic.json"),
            f"dataset.{split}.img_dir": str(root / "images.tar.gz"),
            f"dataset.{split}.panoptic_dir": str(root / "images_panoptic.tar.gz"),
            f"dataset.{split}.batch_size": 2, f"dataset.{split}.num_workers": 0,
        })
    sweep = {
        "name": "e2e", "skill_dir": str(REPO_ROOT), "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 2, "max_epochs": 3}, "metric": "kpi",
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1}, "spec_overrides": overrides,
        "search_space": {"parameters": ["train.optim.lr"]}, "seed": 3,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.mark.slow
def test_cpu_sweep_promotes_a_checkpoint_whose_evaluation_reproduces_the_metric(tmp_path, monkeypatch):
    from hpo.driver.runner import run_sweep
    from skillkit.spec import load_spec

    # The skill's commands (`mask2former train/evaluate`) are console scripts of this environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    summary = run_sweep(_sweep_config(tmp_path))
    sweep_dir = tmp_path / "ws" / "e2e"
    best = json.loads((sweep_dir / "best" / "best.json").read_text())

    trial = next(t for t in summary["trials"] if t["trial_id"] == best["trial_id"])
    history = {entry["epoch"]: entry["kpi"]["mIoU"] for entry in trial["history"]}
    assert best["epoch"] == max(history, key=lambda epoch: (history[epoch], -epoch))  # best epoch, not the last
    assert best["metric"]["value"] == pytest.approx(history[best["epoch"]])
    checkpoint = Path(best["paths"]["checkpoint"])
    assert checkpoint.name.startswith(f"model_epoch_{best['epoch']:03d}_step_") and checkpoint.is_file()

    evaluation = best["evaluation"]
    assert evaluation["run"]["error"] is None, evaluation["run"]
    assert evaluation["run"]["command"][1:3] == ["evaluate", "-e"]
    assert math.isclose(evaluation["final"], evaluation["promoted"], abs_tol=1e-6), evaluation

    export = load_spec(sweep_dir / "best" / "export_spec.yaml", action="export", skill_dir=REPO_ROOT)
    assert export["export"]["checkpoint"] == str(checkpoint)
    # Exported at the size the sweep tuned, and best.json says so.
    assert best["export"]["source"] == "tuned test size" and not best["export"]["differs_from_tuned"]
    assert (export["export"]["input_width"], export["export"]["input_height"]) == (
        best["export"]["tuned_width"], best["export"]["tuned_height"])
    assert export["model"]["sem_seg_head"]["num_classes"] == 8 and export["model"]["mode"] == "panoptic"

    import mlflow

    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    served = Path(mlflow.artifacts.download_artifacts("models:/mask2former@champion", dst_path=str(tmp_path / "dl")))
    registered = next(served.rglob("*.pth"))
    assert registered.name == checkpoint.name
    assert b"e2e-secret-key-123" not in registered.read_bytes()  # the registry copy's embedded spec is redacted
    assert (served / "MLmodel").is_file()  # a loadable MLflow model, not a bare checkpoint folder
    assert not [p for p in served.rglob("*") if p.is_file() and b"e2e-secret-key-123" in p.read_bytes()]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    children = [run for run in runs if run.data.tags.get("hpo.run_kind") == "trial"]
    assert len(children) == 2 and all(run.info.status == "FINISHED" for run in children)
    best_run = next(run for run in children if run.data.tags["hpo.trial_id"] == best["trial_id"])
    logged = sorted((m.step, m.value) for m in client.get_metric_history(best_run.info.run_id, "mIoU"))
    assert logged == sorted(history.items())

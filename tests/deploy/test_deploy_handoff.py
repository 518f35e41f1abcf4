"""The hand-off chain from a promoted sweep: best/export_spec.yaml -> ONNX -> deploy evaluate (ONNX Runtime),
whose metric equals the PyTorch evaluation of the same checkpoint that promotion ran. Nothing pins the export
size: promotion exports at the size the sweep tuned (here the 64 px test resize of 64 px images), and when a
`deploy.input_size` says otherwise it scores the exported graph at that size as well."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


def _sweep_config(tmp_path: Path) -> Path:
    from mask2former.data.synth import write_synthetic_splits
    from mask2former.model.tiny import tiny_spec_overrides

    data = tmp_path / "data"
    write_synthetic_splits(data, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=SIZE)
    overrides = dict(tiny_spec_overrides(num_classes=8))
    overrides.update({
        "model.mask_former.train_num_points": 256,
        "dataset.label_map": str(data / "train" / "label_map_panoptic.json"),
        "dataset.augmentation.train_min_size": [SIZE], "dataset.augmentation.train_max_size": SIZE,
        "dataset.augmentation.train_crop_size": [SIZE, SIZE], "dataset.augmentation.test_min_size": SIZE,
        "dataset.augmentation.test_max_size": SIZE, "dataset.pin_memory": False, "wandb.enable": False,
        "train.iters_per_epoch": 2, "train.seed": 7,
    })
    for split in ("train", "val"):
        root = data / split
        overrides.update({
            f"dataset.{split}.type": "coco_panoptic",
            f"dataset.{split}.panoptic_json": str(root / "annotations_panoptic.json"),
            f"dataset.{split}.img_dir": str(root / "images.tar.gz"),
            f"dataset.{split}.panoptic_dir": str(root / "images_panoptic.tar.gz"),
            f"dataset.{split}.batch_size": 2, f"dataset.{split}.num_workers": 0,
        })
    sweep = {
        "name": "handoff", "skill_dir": str(REPO_ROOT), "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 1, "max_epochs": 2}, "metric": "kpi",
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1}, "spec_overrides": overrides,
        "search_space": {"parameters": ["train.optim.lr"]}, "seed": 3,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.mark.slow
def test_promoted_checkpoint_exports_and_deploys_with_the_same_metric(tmp_path: Path, monkeypatch) -> None:
    from hpo.driver.runner import run_sweep
    from mask2former.actions.deploy_evaluate import run_deploy_evaluation
    from mask2former.cli import main
    from mask2former.config import config_from_dict
    from skillkit.spec import load_spec

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run_sweep(_sweep_config(tmp_path))
    best_dir = tmp_path / "ws" / "handoff" / "best"
    best = json.loads((best_dir / "best.json").read_text())
    pytorch_metric = best["evaluation"]["final"]  # promotion's `mask2former evaluate -e best/evaluate_spec.yaml`
    assert best["evaluation"]["run"]["error"] is None, best["evaluation"]

    assert best["export"] == {"input_width": SIZE, "input_height": SIZE, "source": "tuned test size",
                              "tuned_width": SIZE, "tuned_height": SIZE, "differs_from_tuned": False,
                              "tuned_rule": best["export"]["tuned_rule"]}
    assert "deploy" not in best["evaluation"]  # same size: nothing else to measure

    assert main(["export", "-e", str(best_dir / "export_spec.yaml")]) == 0
    onnx_file = best_dir / "mask2former.onnx"
    export_report = json.loads((best_dir / "export" / "export.json").read_text())
    assert export_report["input"]["shape"] == ["batch", 3, SIZE, SIZE] and export_report["verification"]["passed"]

    spec = load_spec(best_dir / "deploy_evaluate_spec.yaml", action="evaluate",
                     overrides=[f"evaluate.trt_engine={onnx_file}", "evaluate.checkpoint="])
    report = run_deploy_evaluation(config_from_dict(spec), spec)
    metric = best["metric"]["name"] if isinstance(best.get("metric"), dict) and "name" in best["metric"] else "mIoU"
    assert report["backend"] == "onnxruntime"
    assert report["metrics"][metric] == pytest.approx(pytorch_metric, abs=1e-3)
    # ... and equals the score the sweep promoted the checkpoint for (its validation at the tuned size).
    assert report["metrics"][metric] == pytest.approx(best["evaluation"]["promoted"], abs=1e-3)
    assert pytorch_metric > 0
    print(f"hand-off: PyTorch {metric} {pytorch_metric:.4f}, ONNX Runtime {report['metrics'][metric]:.4f}")

    # A deployment that needs another size: promotion exports at it and scores the graph there too.
    from hpo.promotion import promote

    sweep_dir = best_dir.parent
    config = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    config["deploy"] = {"input_size": [96, 96]}
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(config))
    record = promote(sweep_dir).record
    assert record["export"]["source"] == "deploy.input_size" and record["export"]["differs_from_tuned"] is True
    assert (record["export"]["input_width"], record["export"]["input_height"]) == (96, 96)
    evaluation = record["evaluation"]
    assert evaluation["deploy_run"]["export_error"] is None, evaluation["deploy_run"]
    assert evaluation["deploy_input_size"] == [96, 96] and evaluation["deploy"] is not None
    exported = json.loads((best_dir / "export" / "export.json").read_text())  # the graph that was scored
    assert exported["input"]["shape"] == ["batch", 3, 96, 96] and exported["verification"]["passed"]
    assert evaluation["promoted"] == pytest.approx(best["evaluation"]["promoted"])
    assert evaluation["deploy_minus_promoted"] == pytest.approx(evaluation["deploy"] - evaluation["promoted"])
    print(f"at the tuned {SIZE}px: {evaluation['promoted']:.4f}; deployed at 96x96: {evaluation['deploy']:.4f}")
    # The exported ONNX file now travels in the registered MLflow model: a new version, the alias moved to it.
    assert record["mlflow"]["model_error"] is None
    assert int(record["mlflow"]["model_version"]) == int(best["mlflow"]["model_version"]) + 1
    (model_dir,) = (sweep_dir / "tracking" / "mlflow_models").glob("*_onnx")
    assert (model_dir / "model" / "onnx" / "mask2former.onnx").is_file() and (model_dir / "model" / "MLmodel").is_file()

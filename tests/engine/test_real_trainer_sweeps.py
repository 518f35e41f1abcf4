"""End-to-end CPU sweeps of REAL tiny Mask2Former trials (`mask2former train`) on synthetic coco_panoptic data.

Base spec: the shipped `configs/quickstart_spec.yaml` (Swin embed 32, 3 decoder layers, 10 queries, 64 px,
2 steps per epoch). Each sweep must find a best trial, and every validation a trainer wrote must be in
summary.json. Slow: each sweep takes one to three minutes on two cores.

One sweep per way the engine drives a real trainer: pruned by an Optuna pruner (TPE + Hyperband), paused at a
rung and resumed from its own checkpoint (Ray HyperBand), judged by a Ray scheduler at its rungs (BOHB), exploiting a
donor's checkpoint (PBT). Which sampler or scheduler proposes the trials does not change what the trainer
sees, so the other algorithms run in the contract suite (tests/engine/test_search_contract.py) on the fixture
trainer, every algorithm x backend pair on the real default space.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from skillkit.status.follower import read_validations

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mask2former.data.synth import write_synthetic_splits

    root = tmp_path_factory.mktemp("engine_synth")
    write_synthetic_splits(root, fmt="coco_panoptic", num_train=8, num_val=4, seed=0, size=64)
    return root


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False, resources={"hpo_trial_slot": 2})
    yield
    ray.shutdown()


def sweep(tmp_path: Path, data: Path, **changes: Any) -> dict[str, Any]:
    from hpo.driver.runner import run_sweep

    config: dict[str, Any] = {
        "name": "real", "skill_dir": str(REPO), "base_spec": str(REPO / "configs" / "quickstart_spec.yaml"),
        "datasets": {"train": str(data / "train"), "eval": str(data / "val")},
        "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
        "search_space": {"parameters": ["train.optim.lr", "train.optim.weight_decay"],
                         "custom_param_ranges": {"train.optim.lr": {"min": 0.00005, "max": 0.005}}},
        "trial": {"timeout_s": 600, "stop_grace_s": 60}, "tracking": {"enabled": False},
        "promotion": {"enabled": False}, "seed": 0,
    }
    config.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_sweep(path, use_default_observers=False)


def check(summary: dict[str, Any], sweep_dir: Path) -> None:
    assert summary["best"] is not None and (sweep_dir / summary["best"]["checkpoint"]).is_file()
    assert summary["best"]["trial_id"] not in {t["trial_id"] for t in summary["trials"] if t["state"] == "FAILED"}
    for trial in summary["trials"]:
        assert trial["state"] != "FAILED", (trial["trial_id"], trial["failure_class"], trial["failure_reason"])
        written = {v.epoch: v.value for v in read_validations(sweep_dir / "trials" / trial["trial_id"] / "status.json", "mIoU")}
        assert written and {h["epoch"]: h["kpi"]["mIoU"] for h in trial["history"]} == written, trial["trial_id"]


def validated_epochs(trial_dir: Path) -> Counter:
    """How often each epoch was trained and validated, over every run of the trial's trainer."""
    epochs: Counter = Counter()
    for line in (trial_dir / "status.json").read_text().splitlines():
        event = json.loads(line)
        if event.get("status") == "RUNNING" and "mIoU" in (event.get("kpi") or {}):
            epochs[event["epoch"]] += 1
    return epochs


def test_optuna_tpe_with_hyperband_pruner(tmp_path: Path, synthetic_data: Path) -> None:
    summary = sweep(tmp_path, synthetic_data, algorithm={"name": "tpe", "pruner": "hyperband", "max_trials": 4,
                                                         "max_epochs": 3, "n_startup_trials": 2, "reduction_factor": 3},
                    promotion={"enabled": True, "evaluate": False})
    sweep_dir = tmp_path / "ws" / "real"
    check(summary, sweep_dir)
    assert len(summary["trials"]) == 4
    best = json.loads((sweep_dir / "best" / "best.json").read_text())  # promotion handed the best off
    assert best["trial_id"] == summary["best"]["trial_id"]


def test_ray_hyperband_promoted_trial_resumes_without_repeating_epochs(tmp_path: Path, synthetic_data: Path,
                                                                       ray_session: None) -> None:
    # Ray fills the 2-trial full-budget bracket first (trials 0, 1), then a bracket of 3 trials at a 1-epoch
    # rung (2, 3, 4). Each trial takes both CPUs, so they run one at a time in a fixed order: 2 and 3 are paused
    # at the rung until 4 arrives, then the best of the three continues. Whether the one promoted was paused
    # (and so resumes from its own checkpoint) depends only on which trial scores best; trials are seeded per
    # number and train deterministically, so the seed fixes that: with this one trial 3 is promoted (epoch-0
    # mIoU 0.096 against 0.060 and 0.006). With two trials at once, which two arrive first depends on timing,
    # and on a loaded machine the promoted one could be the last to arrive, never paused.
    summary = sweep(tmp_path, synthetic_data, backend="ray", seed=4,
                    resources={"cpus_per_trial": 2, "max_concurrent": 1},
                    algorithm={"name": "hyperband", "max_trials": 5, "max_epochs": 3, "reduction_factor": 3})
    sweep_dir = tmp_path / "ws" / "real"
    check(summary, sweep_dir)
    resumed = 0
    for trial in summary["trials"]:
        trial_dir = sweep_dir / "trials" / trial["trial_id"]
        counts = validated_epochs(trial_dir)
        assert all(count == 1 for count in counts.values()), (trial["trial_id"], counts)  # no epoch twice
        starts = (trial_dir / "status.json").read_text().count('"STARTED"')
        if starts > 1:
            resumed += 1
            spec = yaml.safe_load((trial_dir / "spec.yaml").read_text())
            assert Path(spec["train"]["resume_training_checkpoint_path"]).parent == trial_dir  # its own checkpoint
            assert trial["state"] == "COMPLETED" or trial["state"] == "PRUNED"
    assert resumed >= 1, "no trial was paused at a rung and promoted"


# The real default space (every automl_default_parameter of the schema, the relation test_max_size >=
# test_min_size included), with the ranges of the parameters that size the network or the images narrowed to
# what a CPU trains in seconds; every other parameter keeps its default range.
CPU_SIZED_DEFAULT_SPACE = {"custom_param_ranges": {
    "model.mask_former.hidden_dim": {"min": 32, "max": 48},
    "model.mask_former.dec_layers": {"min": 2, "max": 3},
    "model.mask_former.num_object_queries": {"min": 8, "max": 12},
    "dataset.augmentation.test_min_size": {"min": 48, "max": 80},
    "dataset.augmentation.test_max_size": {"min": 64, "max": 128},
    "dataset.augmentation.train_max_size": {"min": 96, "max": 160},
}}


def test_ray_pbt_on_the_default_space(tmp_path: Path, synthetic_data: Path, ray_session: None) -> None:
    summary = sweep(tmp_path, synthetic_data, backend="ray", search_space=CPU_SIZED_DEFAULT_SPACE,
                    algorithm={"name": "pbt", "max_trials": 3, "max_epochs": 3, "perturbation_interval": 1,
                               "quantile_fraction": 0.5})
    sweep_dir = tmp_path / "ws" / "real"
    check(summary, sweep_dir)
    assert summary["counts"] == {"COMPLETED": 3}
    space = yaml.safe_load((sweep_dir / "space.yaml").read_text())
    assert len(space["parameters"]) == 10 and all(p.get("hot") for p in space["parameters"])  # the hot ten
    # the crash came at an exploit (a donor checkpoint loaded into another shape): one must have happened
    assert any(trial["lineage"] for trial in summary["trials"]), "no trial exploited a donor"
    for trial in summary["trials"]:  # every exploit copied its donor's checkpoint into the trial's own folder
        for step in trial["lineage"]:
            assert (sweep_dir / "trials" / trial["trial_id"] / "exploits" / step["donor"] / step["checkpoint"]).is_file()
    base = yaml.safe_load((REPO / "configs" / "quickstart_spec.yaml").read_text())
    for trial in summary["trials"]:
        spec = yaml.safe_load((sweep_dir / "trials" / trial["trial_id"] / "spec.yaml").read_text())
        assert spec["model"]["mask_former"]["hidden_dim"] == base["model"]["mask_former"]["hidden_dim"]  # cold: held


def test_ray_bohb_on_the_default_space(tmp_path: Path, synthetic_data: Path, ray_session: None) -> None:
    pytest.importorskip("hpbandster")
    summary = sweep(tmp_path, synthetic_data, backend="ray", search_space=CPU_SIZED_DEFAULT_SPACE,
                    algorithm={"name": "bohb", "max_trials": 4, "max_epochs": 3, "reduction_factor": 3})
    sweep_dir = tmp_path / "ws" / "real"
    check(summary, sweep_dir)
    assert {t["state"] for t in summary["trials"]} <= {"COMPLETED", "PRUNED"}
    for trial in summary["trials"]:
        params = trial["params"]
        assert len(params) == 16
        assert params["dataset.augmentation.test_max_size"] >= params["dataset.augmentation.test_min_size"]
        assert params["model.mask_former.hidden_dim"] % 8 == 0

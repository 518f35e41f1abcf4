"""Synthetic sweep folders written exactly as the engine/trainer contract says (sweep.yaml, space.yaml,
trials/<id>/{spec.yaml,status.json,train.log,trial.json,model_epoch_XXX_step_XXXXX.pth}, summary.json),
so tracking and promotion are tested without running the engine or a trainer. Epochs are numbered as
TAO numbers them (the first is 0, in status.json, trial.json and the checkpoint names).

Each trial follows a given learning curve of the sweep metric; every other KPI is derived from it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hpo.trials.record import TrialRecord

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 10


@dataclasses.dataclass
class FakeTrial:
    trial_id: str
    params: dict[str, Any]
    curve: Sequence[float]
    state: str = "COMPLETED"
    number: int | None = None
    failure_class: str | None = None
    failure_reason: str | None = None
    gpus: float = 1.0
    hours: float = 0.5
    checkpoint_epochs: Sequence[int] | None = None  # TAO epoch indices; default: every validated epoch


def train_template() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "references" / "spec_template_train.yaml").read_text())


SEARCHED = ("train.optim.lr", "model.mask_former.dec_layers", "model.mask_former.hidden_dim")


def compiled_space_yaml() -> str:
    """The search space the engine would write for SEARCHED, compiled from this repository's train schema."""
    from hpo.space import compile_space
    from skillkit.skill_dir import SkillDir

    return compile_space(SkillDir(REPO_ROOT).schema("train"), selection=list(SEARCHED)).to_yaml()


def kpi_for(value: float, epoch: int, metric: str) -> dict[str, float]:
    kpi = {"mIoU": value, "pixel_acc": min(1.0, value + 0.2), "PQ": value * 0.8, "val_loss": 2.0 - value,
           "train_loss": 2.5 - value - 0.01 * epoch, "lr": 1e-4 / epoch}
    kpi[metric] = value
    return kpi


def write_trial(sweep_dir: Path, trial: FakeTrial, *, metric: str, direction: str, base_spec: dict[str, Any],
                started: _dt.datetime, encryption_key: str = "") -> dict[str, Any]:
    trial_dir = sweep_dir / "trials" / trial.trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec = copy.deepcopy(base_spec)
    spec["results_dir"] = str(trial_dir)
    spec["encryption_key"] = encryption_key
    spec["train"]["num_epochs"] = len(trial.curve)
    for dotted, value in trial.params.items():
        node = spec
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    (trial_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    lines: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    epoch_seconds = trial.hours * 3600 / max(1, len(trial.curve))
    clock = started

    def line(status: str, epoch: int | None, **extra: Any) -> dict[str, Any]:
        return {"date": clock.strftime("%Y-%m-%d"), "time": clock.strftime("%H:%M:%S"), "status": status,
                "verbosity": "INFO", "message": extra.pop("message", ""), "epoch": epoch,
                "max_epoch": len(trial.curve) - 1,
                "step": 0 if epoch is None else (epoch + 1) * STEPS_PER_EPOCH, **extra}

    lines.append(line("STARTED", None, message="Starting training", kpi={}))
    wanted = set(trial.checkpoint_epochs) if trial.checkpoint_epochs is not None else None
    newest = None
    for epoch, value in enumerate(trial.curve):
        clock = started + _dt.timedelta(seconds=epoch_seconds * (epoch + 1))
        kpi = kpi_for(float(value), epoch + 1, metric)
        status_line = line("RUNNING", epoch, message=f"epoch {epoch} validated", kpi=kpi, time_per_epoch=epoch_seconds,
                           eta=epoch_seconds * (len(trial.curve) - epoch - 1))
        lines.append(status_line)
        step = (epoch + 1) * STEPS_PER_EPOCH
        name = f"model_epoch_{epoch:03d}_step_{step:05d}.pth"
        if wanted is None or epoch in wanted:
            (trial_dir / name).write_bytes(f"checkpoint {trial.trial_id} epoch {epoch}".encode() * 8)
            newest = name
        history.append({**status_line, "seen_at": clock.timestamp(), "checkpoint": name})
    if newest:
        (trial_dir / "mask2former_model_latest.pth").symlink_to(newest)
    ended = started + _dt.timedelta(hours=trial.hours)
    if trial.state == "FAILED":
        lines.append(line("FAILURE", len(trial.curve) - 1, message=trial.failure_reason or "boom",
                          verbosity="ERROR", error_class=trial.failure_class or "internal", kpi={}))
    elif trial.state == "COMPLETED":
        lines.append(line("SUCCESS", len(trial.curve) - 1, message="Training finished", kpi={}))
    (trial_dir / "status.json").write_text("".join(json.dumps(item) + "\n" for item in lines))
    (trial_dir / "train.log").write_text(f"training {trial.trial_id}\nusing encryption_key={encryption_key}\n")

    best = None
    sign = 1 if direction == "maximize" else -1
    for entry in history:
        if (trial_dir / entry["checkpoint"]).exists() and (best is None or sign * entry["kpi"][metric] > sign * best["metric"]):
            best = {"epoch": entry["epoch"], "step": entry["step"], "metric": entry["kpi"][metric],
                    "checkpoint": entry["checkpoint"]}
    record = {
        "trial_id": trial.trial_id, "number": trial.number, "params": trial.params, "state": trial.state,
        "failure_class": trial.failure_class, "failure_reason": trial.failure_reason, "history": history,
        "best": best, "started_at": started.isoformat(timespec="seconds"),
        "ended_at": None if trial.state == "RUNNING" else ended.isoformat(timespec="seconds"),
        "resources": {"gpus": trial.gpus, "cpus": 1}, "mlflow_run_id": None, "epoch_numbering": "tao",
    }
    (trial_dir / "trial.json").write_text(json.dumps(record, indent=2))
    return record


def write_sweep(root: Path, trials: Sequence[FakeTrial], *, name: str = "sweep_a", metric: str = "mIoU",
                direction: str = "maximize", tracking: dict[str, Any] | None = None,
                promotion: dict[str, Any] | None = None, backend: str = "optuna", algorithm: str = "tpe",
                baseline: dict[str, Any] | None = None, encryption_key: str = "", extra_config: dict[str, Any] | None = None,
                skill_dir: Path | None = REPO_ROOT, num_classes: int = 3) -> Path:
    """Write a complete sweep folder under `root` and return it."""
    sweep_dir = root / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "name": name, "skill_dir": str(skill_dir) if skill_dir else None, "action": "train",
        "algorithm": {"name": algorithm, "max_trials": len(trials), "max_epochs": max(len(t.curve) for t in trials)},
        "metric": metric, "direction": direction, "backend": backend, "workspace": str(root), "seed": 0,
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 1, "max_concurrent": 2},
        "storage": "postgresql://hpo:s3cretpassw0rd@db.example:5432/optuna",
    }
    if tracking is not None:
        config["tracking"] = tracking
    if promotion is not None:
        config["promotion"] = promotion
    config.update(extra_config or {})
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (sweep_dir / "space.yaml").write_text(compiled_space_yaml())

    base = train_template()
    base["model"]["mode"] = "panoptic"
    base["model"]["sem_seg_head"]["num_classes"] = num_classes
    base["dataset"]["contiguous_id"] = True
    base["dataset"]["label_map"] = str(root / "data" / "label_map.json")
    base["dataset"]["val"]["img_dir"] = str(root / "data" / "val" / "images")
    started = _dt.datetime(2026, 1, 5, 9, 0, 0)
    records = []
    for index, trial in enumerate(trials):
        if trial.number is None:
            trial.number = index
        records.append(write_trial(sweep_dir, trial, metric=metric, direction=direction, base_spec=base,
                                   started=started + _dt.timedelta(minutes=5 * index), encryption_key=encryption_key))
    summary = {"sweep": name, "metric": metric, "direction": direction, "algorithm": algorithm, "backend": backend,
               "trials": records, "best": None, "baseline": baseline}
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return sweep_dir


def params(lr: float, dec_layers: int, hidden_dim: int) -> dict[str, Any]:
    return dict(zip(SEARCHED, (lr, dec_layers, hidden_dim)))


def default_trials() -> list[FakeTrial]:
    """Three trials: t0 peaks early (epoch 1, the 2nd of 5), t1 is steady but lower, t2 is pruned, t3 failed."""
    return [
        FakeTrial("t0", params(3e-4, 6, 256), [0.30, 0.62, 0.55, 0.50, 0.48]),
        FakeTrial("t1", params(1e-3, 3, 128), [0.20, 0.35, 0.44, 0.50, 0.58]),
        FakeTrial("t2", params(5e-4, 9, 384), [0.10, 0.12], state="PRUNED"),
        FakeTrial("t3", params(9e-4, 4, 512), [0.05], state="FAILED", failure_class="oom",
                  failure_reason="CUDA out of memory"),
    ]


def replay_into(observer: Any, sweep_dir: Path, *, finish: bool = True) -> None:
    """Drive an observer with the events the engine would have sent for this sweep folder."""
    summary = json.loads((sweep_dir / "summary.json").read_text())
    observer.sweep_started()  # the observer was given the sweep folder; a replay has no sweep context
    for record in summary["trials"]:
        started = TrialRecord.from_dict(dict(record, history=[], best=None, state="RUNNING", ended_at=None))
        observer.trial_started(started)
        for entry in record["history"]:
            observer.trial_reported(started, entry)
        if finish:
            observer.trial_finished(TrialRecord.from_dict(record))
    if finish:
        observer.sweep_finished(summary)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = ["FakeTrial", "default_trials", "free_port", "params", "replay_into", "write_sweep"]

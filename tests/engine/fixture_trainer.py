"""A stand-in trainer honouring the engine–trainer contract (DESIGN.md §3) in milliseconds per epoch.

`fixture_trainer.py train -e SPEC [a.b=value ...]` reads the spec YAML, "trains" for `train.num_epochs`
epochs and writes into `results_dir` exactly what the real trainer writes, through the same kit
(`skillkit.status.StatusWriter`, `skillkit.checkpoints`): status.json lines (STARTED, one RUNNING
validation line per epoch with kpi {mIoU, pixel_acc, val_loss, train_loss, lr}, SUCCESS or a FAILURE line
with error_class), checkpoints `model_epoch_{e:03d}_step_{s:05d}.pth` numbered as TAO numbers them (the
first epoch is 000) written BEFORE the epoch's status line, and the `mask2former_model_latest.pth` link.
It honours SIGTERM (checkpoint, status line, exit 0), `EARLY_STOP_EPOCH` (a number of epochs), and
`train.resume_training_checkpoint_path` (continues with the next epoch and the checkpoint's accumulated
progress, so an exploited PBT trial inherits its donor's quality).

The learning curve is a formula of the params: per-epoch progress q(lr, weight_decay, width, activation),
mIoU = 1 - exp(-progress / 3). Best lr is near 10^-2.5.

Every epoch trained is appended to `epochs_run.txt` (counting from 1) so tests can prove no epoch was
trained twice, and every
launch appends `{"spec", "resume", "resumed_spec"}` to `launches.jsonl` (the spec it ran with, and the spec
stored in the checkpoint it continued from), so tests can check what each run and each PBT exploit was given.

Fault injection (spec section `fixture`): fail = crash | oom | data | bad_spec | hang | kill, in the
`fail_at_epoch`-th epoch (default 1, the first), only when `train.optim.lr` > `fail_if_lr_above` if that is set.
`evaluate -e SPEC` reports the mIoU stored in `evaluate.checkpoint` (the baseline path); on a dataset root
holding `fixture_eval.json` (beside its files, or inside its extracted images folder, which is where it stays
once an s3:// root is staged) it scores lower by the trained weight decay (a stand-in held-out test split).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from skillkit.checkpoints import checkpoint_name, point_latest_link
from skillkit.status import StatusWriter

STOP = {"requested": False}


def on_sigterm(signum, frame):  # noqa: ANN001
    STOP["requested"] = True


def get(spec: dict, dotted: str, default=None):  # noqa: ANN001
    node = spec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(spec: dict, dotted: str, value) -> None:  # noqa: ANN001
    parts = dotted.split(".")
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def quality(spec: dict) -> float:
    lr = float(get(spec, "train.optim.lr", 1e-3))
    weight_decay = float(get(spec, "train.optim.weight_decay", 0.0))
    width = float(get(spec, "model.width", 32))
    activation = get(spec, "model.activation", "relu")
    bonus = {"relu": 1.0, "gelu": 1.1, "silu": 1.05}.get(activation, 1.0)
    return math.exp(-((math.log10(lr) + 2.5) ** 2) / 1.5) * (1.0 - 0.5 * weight_decay) * bonus * (width / 64.0) ** 0.1


def save_checkpoint(results_dir: Path, epoch: int, completed: int, step: int, progress: float, spec: dict) -> str:
    """A checkpoint named with TAO's index of the epoch in progress; `completed` epochs are done."""
    name = checkpoint_name(epoch, step)
    temporary = results_dir / f".{name}.tmp"
    temporary.write_text(json.dumps({"epoch": epoch, "completed_epochs": completed, "step": step,
                                     "progress": progress, "spec": spec}))
    os.replace(temporary, results_dir / name)
    point_latest_link(results_dir, "mask2former_model", name)
    return name


def fail(status: StatusWriter, mode: str, epoch: int, step: int) -> None:
    if mode == "crash":
        status.write("FAILURE", "fixture crash: something broke inside training", epoch=epoch, step=step,
                     error_class="internal", verbosity="ERROR")
        print("Traceback (most recent call last):\nRuntimeError: fixture crash", file=sys.stderr)
        sys.exit(1)
    if mode == "oom":
        status.write("FAILURE", "CUDA out of memory. Tried to allocate 2.00 GiB", epoch=epoch, step=step,
                     error_class="oom", verbosity="ERROR")
        sys.exit(10)
    if mode == "data":
        status.write("FAILURE", "dataset annotations.json is missing", epoch=epoch, step=step,
                     error_class="data", verbosity="ERROR")
        sys.exit(6)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)


def train(spec: dict) -> int:
    results_dir = Path(spec["results_dir"])
    results_dir.mkdir(parents=True, exist_ok=True)
    max_epoch = int(get(spec, "train.num_epochs", 3))
    status = StatusWriter(results_dir, num_epochs=max_epoch)
    fixture = spec.get("fixture") or {}
    mode = fixture.get("fail", "none")
    threshold = fixture.get("fail_if_lr_above")
    if threshold is not None and float(get(spec, "train.optim.lr", 0)) <= float(threshold):
        mode = "none"
    if mode == "bad_spec":
        status.write("FAILURE", "'train.optim.lr' = -1 must be > 0", error_class="spec", verbosity="ERROR")
        return 3
    steps_per_epoch = int(fixture.get("steps_per_epoch", 4))
    sleep_s = float(fixture.get("sleep_s", 0.02))
    plateau_after = fixture.get("plateau_after")  # epochs after which training stops improving (ties)
    early_stop = os.environ.get("EARLY_STOP_EPOCH", "").strip()
    early_stop_epoch = int(early_stop) if early_stop else None
    start_epoch, progress = 0, 0.0
    resume = get(spec, "train.resume_training_checkpoint_path", "")
    state: dict = {}
    if resume:
        state = json.loads(Path(resume).read_text())
        start_epoch, progress = int(state["completed_epochs"]), float(state["progress"])  # epochs completed
    with open(results_dir / "launches.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"spec": spec, "resume": resume, "resumed_spec": state.get("spec")}) + "\n")
    step = start_epoch * steps_per_epoch
    status.write("STARTED", f"Starting training at epoch {start_epoch}", step=step)
    with open(results_dir / "trial_env.jsonl", "a", encoding="utf-8") as handle:  # what the engine gave this run
        handle.write(json.dumps({name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}) + "\n")
    q = quality(spec)
    lr = float(get(spec, "train.optim.lr", 1e-3))
    epoch_times: list[float] = []
    for epoch in range(start_epoch, max_epoch):  # TAO's 0-based epoch index
        completed = epoch + 1
        epoch_started = time.monotonic()
        if mode != "none" and completed == int(fixture.get("fail_at_epoch", 1)):
            fail(status, mode, epoch, step)
        for _ in range(steps_per_epoch):
            time.sleep(sleep_s / steps_per_epoch)
            step += 1
            if plateau_after is None or completed <= plateau_after:  # then the metric stays exactly level
                progress += q / steps_per_epoch
            if STOP["requested"]:
                name = save_checkpoint(results_dir, epoch, epoch, step, progress, spec)
                status.write("RUNNING", f"Stopped by SIGTERM during epoch {epoch}; checkpoint {name}", epoch=epoch,
                             step=step)
                return 0
        with open(results_dir / "epochs_run.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{completed}\n")
        miou = 1.0 - math.exp(-progress / 3.0)
        save_checkpoint(results_dir, epoch, completed, step, progress, spec)
        kpi = {"mIoU": miou, "pixel_acc": 0.5 + miou / 2, "val_loss": 2.0 - miou, "train_loss": 2.2 - miou, "lr": lr}
        epoch_times.append(time.monotonic() - epoch_started)
        mean = sum(epoch_times) / len(epoch_times)
        status.write("RUNNING", f"Epoch {epoch} finished ({completed}/{max_epoch}) and validated", epoch=epoch,
                     step=step, kpi=kpi, time_per_epoch=epoch_times[-1], eta=mean * (max_epoch - completed))
        if STOP["requested"] or (early_stop_epoch is not None and completed >= early_stop_epoch and completed < max_epoch):
            return 0
    status.write("SUCCESS", "Training finished", epoch=max_epoch - 1, step=step)
    return 0


def evaluate(spec: dict) -> int:
    results_dir = Path(spec["results_dir"])
    results_dir.mkdir(parents=True, exist_ok=True)
    status = StatusWriter(results_dir, num_epochs=None)
    checkpoint = get(spec, "evaluate.checkpoint", "")
    state = json.loads(Path(checkpoint).read_text())
    miou = 1.0 - math.exp(-float(state["progress"]) / 3.0)
    # A held-out dataset root may carry `fixture_eval.json` {"weight_decay_penalty": x}: the score there is
    # miou * (1 - x * weight_decay), so tests can tell a test-split score from a validation one.
    markers = [folder / "fixture_eval.json" for value in (get(spec, "dataset.val") or {}).values() if value
               for folder in (Path(str(value)).parent, Path(str(value)))]
    marker = next((path for path in markers if path.is_file()), None)
    if marker is not None:
        penalty = float(json.loads(marker.read_text())["weight_decay_penalty"])
        miou *= 1.0 - penalty * float(get(state.get("spec") or {}, "train.optim.weight_decay", 0.0))
    status.write("SUCCESS", "Evaluation finished", kpi={"mIoU": miou, "pixel_acc": 0.5 + miou / 2, "val_loss": 2.0 - miou})
    return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    action, flag, spec_path, *overrides = argv
    if flag != "-e":
        print(f"usage: fixture_trainer.py ACTION -e SPEC, got {argv}", file=sys.stderr)
        return 2
    spec = yaml.safe_load(Path(spec_path).read_text())
    for text in overrides:
        key, _, value = text.partition("=")
        set_dotted(spec, key, yaml.safe_load(value))
    return train(spec) if action == "train" else evaluate(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A trainer that replays a suite's learning curve under the engine–trainer contract (DESIGN.md §3), for the
simulator-vs-real cross-check.

`python -m benchmarks.search_efficiency.replay_trainer train -e SPEC` reads the spec YAML (the suite's
parameters at their dotted names, `train.num_epochs`, `results_dir`, `train.resume_training_checkpoint_path`)
and, for each epoch, writes the checkpoint (`skillkit.checkpoints`: `model_epoch_{e:03d}_step_{s:05d}.pth` with
TAO's 0-based epoch index, plus the `mask2former_model_latest.pth` link) and then one RUNNING status.json line
through the shared writer (`skillkit.status.StatusWriter`, TAO's numbering: the line closing the first epoch
says epoch 0) whose kpi holds the suite's value after that many epochs; it ends with SUCCESS. It honours
SIGTERM (stops after the current epoch, exit 0), `EARLY_STOP_EPOCH` (epochs trained), and resume (continues
with the epoch after the checkpoint's). The suite is named by the
environment variable REPLAY_SUITE (the sweep config's `trial.env`); only deterministic curves (the Hartmann
suites) are replayed, so the real path and the simulator see the same values.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from skillkit.checkpoints import checkpoint_name, epochs_trained, point_latest_link
from skillkit.status.writer import RUNNING, STARTED, SUCCESS, StatusWriter

STOP = {"requested": False}
STEPS_PER_EPOCH = 1
MODEL_NAME = "mask2former_model"  # the latest link is mask2former_model_latest.pth, as the real trainer's


def _get(spec: dict, dotted: str, default: object = None) -> object:
    node: object = spec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _step(index: int) -> int:
    """The global step once epoch index `index` is complete."""
    return epochs_trained(index) * STEPS_PER_EPOCH


def _checkpoint(results_dir: Path, index: int) -> None:
    name = checkpoint_name(index, _step(index))
    tmp = results_dir / f".{name}.tmp"
    tmp.write_text(json.dumps({"epoch": index}))
    os.replace(tmp, results_dir / name)
    point_latest_link(results_dir, MODEL_NAME, name)


def train(spec: dict) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.search_efficiency.env import use_benchmark_env

    use_benchmark_env()
    import numpy as np

    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(os.environ["REPLAY_SUITE"])
    results_dir = Path(str(spec["results_dir"]))
    max_epoch = int(_get(spec, "train.num_epochs", suite.max_epochs))  # type: ignore[arg-type]
    writer = StatusWriter(results_dir, num_epochs=max_epoch)
    config = {name: _get(spec, name) for name in suite.names}
    curve = suite.curve(config, np.random.default_rng(0))
    resume = str(_get(spec, "train.resume_training_checkpoint_path", "") or "")
    start = int(json.loads(Path(resume).read_text())["epoch"]) + 1 if resume else 0  # the first index to train
    early = os.environ.get("EARLY_STOP_EPOCH", "").strip()
    stop_at = min(max_epoch, int(early)) if early else max_epoch  # epochs trained when the run ends
    writer.write(STARTED, f"replaying {suite.name} from epoch {start}")

    def stopped(last: int) -> int:  # `last`: the index of the last epoch completed (-1: none)
        writer.write(SUCCESS, "stopped on SIGTERM after a checkpoint", epoch=last if last >= 0 else None,
                     step=_step(last) if last >= 0 else None)
        return 0

    epoch_s = float(os.environ.get("REPLAY_EPOCH_S", "0.5"))
    for index in range(start, stop_at):
        if index > start:
            time.sleep(epoch_s)  # an epoch is long next to the engine's 0.05 s poll, as with real training
        if STOP["requested"]:
            return stopped(index - 1)
        _checkpoint(results_dir, index)
        writer.write(RUNNING, f"epoch {index}", epoch=index, step=_step(index), time_per_epoch=0.01, eta=0.0,
                     kpi={suite.metric: curve.value(epochs_trained(index))})
        if STOP["requested"]:
            return stopped(index)
    last = stop_at - 1
    writer.write(SUCCESS, "training finished", epoch=last if last >= 0 else None, step=_step(last) if last >= 0 else None)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[0] != "train" or argv[1] != "-e":
        print("usage: replay_trainer train -e SPEC", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: STOP.update(requested=True))
    spec = yaml.safe_load(Path(argv[2]).read_text())
    return train(spec)


if __name__ == "__main__":
    raise SystemExit(main())

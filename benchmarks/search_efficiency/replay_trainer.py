"""A trainer that replays a suite's learning curve under the engine–trainer contract (DESIGN.md §3), for the
simulator-vs-real cross-check.

`python -m benchmarks.search_efficiency.replay_trainer train -e SPEC` reads the spec YAML (the suite's
parameters at their dotted names, `train.num_epochs`, `results_dir`, `train.resume_training_checkpoint_path`)
and, for each epoch, writes the checkpoint `model_epoch_{e:03d}_step_{s:05d}.pth` (plus the
`mask2former_model_latest.pth` link) and then one RUNNING status.json line whose kpi holds the suite's value
for that epoch; it ends with SUCCESS. It honours SIGTERM (stops after the current epoch, exit 0),
`EARLY_STOP_EPOCH`, and resume (continues with the epoch after the checkpoint's). The suite is named by the
environment variable REPLAY_SUITE (the sweep config's `trial.env`); only deterministic curves (the Hartmann
suites) are replayed, so the real path and the simulator see the same values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

STOP = {"requested": False}
STEPS_PER_EPOCH = 1


def _get(spec: dict, dotted: str, default: object = None) -> object:
    node: object = spec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _status(path: Path, status: str, message: str, *, epoch: int | None, max_epoch: int, kpi: dict | None = None) -> None:
    now = dt.datetime.now()
    record = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M:%S"), "status": status, "verbosity": "INFO",
              "message": message, "epoch": epoch, "max_epoch": max_epoch, "step": (epoch or 0) * STEPS_PER_EPOCH,
              "time_per_epoch": 0.01, "eta": 0.0, "kpi": kpi or {}}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _checkpoint(results_dir: Path, epoch: int) -> None:
    name = f"model_epoch_{epoch:03d}_step_{epoch * STEPS_PER_EPOCH:05d}.pth"
    tmp = results_dir / f".{name}.tmp"
    tmp.write_text(json.dumps({"epoch": epoch}))
    os.replace(tmp, results_dir / name)
    link, tmp_link = results_dir / "mask2former_model_latest.pth", results_dir / ".latest.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(name, tmp_link)
    os.replace(tmp_link, link)


def train(spec: dict) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.search_efficiency.env import use_benchmark_env

    use_benchmark_env()
    import numpy as np

    from benchmarks.search_efficiency.suites import get_suite

    suite = get_suite(os.environ["REPLAY_SUITE"])
    results_dir = Path(str(spec["results_dir"]))
    results_dir.mkdir(parents=True, exist_ok=True)
    status = results_dir / "status.json"
    max_epoch = int(_get(spec, "train.num_epochs", suite.max_epochs))  # type: ignore[arg-type]
    config = {name: _get(spec, name) for name in suite.names}
    curve = suite.curve(config, np.random.default_rng(0))
    resume = str(_get(spec, "train.resume_training_checkpoint_path", "") or "")
    start = int(json.loads(Path(resume).read_text())["epoch"]) if resume else 0
    early = os.environ.get("EARLY_STOP_EPOCH", "").strip()
    stop_at = min(max_epoch, int(early)) if early else max_epoch
    _status(status, "STARTED", f"replaying {suite.name} from epoch {start}", epoch=start, max_epoch=max_epoch)
    epoch_s = float(os.environ.get("REPLAY_EPOCH_S", "0.5"))
    for epoch in range(start + 1, stop_at + 1):
        if epoch > start + 1:
            time.sleep(epoch_s)  # an epoch is long next to the engine's 0.05 s poll, as with real training
        if STOP["requested"]:
            _status(status, "SUCCESS", "stopped on SIGTERM after a checkpoint", epoch=epoch - 1, max_epoch=max_epoch)
            return 0
        _checkpoint(results_dir, epoch)
        _status(status, "RUNNING", f"epoch {epoch}", epoch=epoch, max_epoch=max_epoch,
                kpi={suite.metric: curve.value(epoch)})
        if STOP["requested"]:
            _status(status, "SUCCESS", "stopped on SIGTERM after a checkpoint", epoch=epoch, max_epoch=max_epoch)
            return 0
    _status(status, "SUCCESS", "training finished", epoch=stop_at, max_epoch=max_epoch)
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

"""A trainer for the S3 sweep test: checks that the data it is given is local, then runs the fixture trainer.

`data_trainer.py train -e SPEC` fails with a `data` error (exit 6, FAILURE status line) unless
`dataset.train.img_dir` and `dataset.val.img_dir` are local folders holding the images and
`dataset.train.annotations` is a readable local JSON file listing them: an `s3://` URI, an archive path or a
missing folder all fail. Each run appends what it saw to `<results_dir>/data_seen.jsonl`, then hands over
to `tests/engine/fixture_trainer.py` (same contract as the real trainer) for the training itself.
"""

from __future__ import annotations

import datetime as dt
import json
import runpy
import sys
from pathlib import Path

import yaml

FIXTURE_TRAINER = Path(__file__).resolve().parents[1] / "engine" / "fixture_trainer.py"


def _fail(results_dir: Path, message: str) -> int:
    now = dt.datetime.now()
    line = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M:%S"), "status": "FAILURE",
            "verbosity": "ERROR", "message": message, "error_class": "data", "epoch": 0, "max_epoch": 0,
            "step": 0, "time_per_epoch": 0.0, "eta": 0.0, "kpi": {}}
    with open(results_dir / "status.json", "a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(message, file=sys.stderr)
    return 6


def check_data(spec: dict) -> dict | str:
    """What the trainer saw (dict), or why the data is unusable (str)."""
    dataset = spec.get("dataset") or {}
    train_dir = Path(str((dataset.get("train") or {}).get("img_dir", "")))
    val_dir = Path(str((dataset.get("val") or {}).get("img_dir", "")))
    annotations = Path(str((dataset.get("train") or {}).get("annotations", "")))
    for path in (train_dir, val_dir):
        if not path.is_dir():
            return f"dataset folder {path} is not a local folder"
    if not annotations.is_file():
        return f"annotations {annotations} is not a local file"
    listed = json.loads(annotations.read_text())["images"]
    missing = [name for name in listed if not (train_dir / name).is_file()]
    if missing:
        return f"images listed in {annotations} are missing from {train_dir}: {missing}"
    return {"train_img_dir": str(train_dir), "val_img_dir": str(val_dir), "train_images": len(listed),
            "val_images": len(list(val_dir.iterdir()))}


def main(argv: list[str]) -> int:
    spec = yaml.safe_load(Path(argv[2]).read_text())
    results_dir = Path(spec["results_dir"])
    results_dir.mkdir(parents=True, exist_ok=True)
    seen = check_data(spec)
    if isinstance(seen, str):
        return _fail(results_dir, seen)
    with open(results_dir / "data_seen.jsonl", "a") as handle:
        handle.write(json.dumps(seen) + "\n")
    sys.argv = [str(FIXTURE_TRAINER), *argv]
    try:
        runpy.run_path(str(FIXTURE_TRAINER), run_name="__main__")
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

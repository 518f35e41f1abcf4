"""Generate the tiny-Mask2Former curve table: our own trainer on synthetic COCO-panoptic data, one
configuration after another, every epoch's validation mIoU recorded, until a wall-clock cap.

    python benchmarks/search_efficiency/tables/make_mask2former.py --max-minutes 50 \
        --out benchmarks/search_efficiency/data/mask2former_tiny.json.gz

What is trained: the tiny model of `configs/quickstart_spec.yaml` (Swin embed 32, 3 decoder layers, 10
queries, 64 px images) on `mask2former dataset synth` shapes (train/val split, seeded), `--epochs` epochs of
`--iters-per-epoch` optimizer steps, validated after every epoch at the images' original resolution. The
searched parameters are the quickstart's (learning rate, weight decay, decoder dropout), drawn by the engine's
own compiled search space of `schemas/train.schema.json` (random draws, a fixed seed), so the table's space
is the real schema's. Every run goes through the real spec loader and `run_training` (the code
`mask2former train` runs) in this process, one after another; the table is rewritten after every
configuration, so stopping at the cap (or killing the script) keeps what was done.
Seeded and reproducible on CPU: the same arguments give the same configurations and, up to floating-point
non-determinism of multithreaded CPU kernels, the same curves (run with one thread, as below).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.search_efficiency.table import CurveTable, TableParameter  # noqa: E402

PARAMETERS = ("train.optim.lr", "train.optim.weight_decay", "model.mask_former.dropout")
LR_RANGE = {"min": 0.00005, "max": 0.005}  # the quickstart's practical range on this tiny CPU model


def make_data(folder: Path, *, seed: int, images: int, val: int) -> Path:
    if not (folder / "val" / "annotations_panoptic.json").is_file():
        subprocess.run([sys.executable, "-m", "mask2former.cli", "dataset", "synth", "--format", "coco_panoptic",
                        "--out", str(folder), "--num-images", str(images), "--split-val", str(val), "--size", "64",
                        "--seed", str(seed)], check=True)
    return folder


def base_overrides(data: Path, *, epochs: int, iters: int, seed: int) -> dict:
    spec = yaml.safe_load((ROOT / "configs" / "quickstart_spec.yaml").read_text())
    flat: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(spec, "")
    flat.update({"train.num_epochs": epochs, "train.iters_per_epoch": iters, "train.seed": seed,
                 "train.checkpoint_interval": epochs, "train.validation_interval": 1,
                 "dataset.label_map": str(data / "train" / "label_map_panoptic.json")})
    for split, folder in (("train", "train"), ("val", "val"), ("test", "val")):
        root = data / folder
        flat.update({f"dataset.{split}.type": "coco_panoptic",
                     f"dataset.{split}.panoptic_json": str(root / "annotations_panoptic.json"),
                     f"dataset.{split}.img_dir": str(root / "images.tar.gz"),
                     f"dataset.{split}.panoptic_dir": str(root / "images_panoptic.tar.gz")})
    return flat


def kpi_curve(results_dir: Path, metric: str, epochs: int) -> tuple[list[float], list[float]]:
    """(metric, seconds) per epoch 1..`epochs` from the run's status.json (whose `epoch` is the 0-based index)."""
    from skillkit.checkpoints import epochs_trained

    values: dict[int, float] = {}
    seconds: dict[int, float] = {}
    for line in (results_dir / "status.json").read_text().splitlines():
        event = json.loads(line)
        kpi = event.get("kpi") or {}
        if event.get("epoch") is None or event.get("status") != "RUNNING":
            continue
        done = epochs_trained(int(event["epoch"]))
        if metric in kpi:
            values[done] = float(kpi[metric])
        if event.get("time_per_epoch"):
            seconds[done] = float(event["time_per_epoch"])
    if sorted(values) != list(range(1, epochs + 1)):
        raise RuntimeError(f"run in {results_dir} validated epochs {sorted(values)}, expected 1..{epochs}")
    return [values[e] for e in range(1, epochs + 1)], [seconds.get(e, float("nan")) for e in range(1, epochs + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/search_efficiency/data/mask2former_tiny.json.gz"))
    parser.add_argument("--workdir", default=str(ROOT / "workspace" / "curve_tables" / "mask2former"))
    parser.add_argument("--max-minutes", type=float, default=50.0, help="wall-clock cap (the table keeps what finished)")
    parser.add_argument("--max-configs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--iters-per-epoch", type=int, default=2)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--val-images", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import logging

    from hpo.space import compile_space
    from mask2former.config import config_from_dict
    from mask2former.training.trainer import run_training
    from skillkit.skill_dir import SkillDir
    from skillkit.spec import load_spec

    logging.disable(logging.WARNING)
    started = time.monotonic()
    workdir = Path(args.workdir)
    data = make_data(workdir / "data", seed=args.seed, images=args.images, val=args.val_images)
    skill = SkillDir(ROOT)
    space = compile_space(skill.schema("train"), selection=list(PARAMETERS),
                          custom_param_ranges={"train.optim.lr": LR_RANGE})
    parameters = tuple(
        TableParameter(name=p.name, type="int" if p.kind == "int" else "float", minimum=p.low, maximum=p.high,
                       scale=p.scale)
        for p in space.parameters
    )
    rng = np.random.default_rng(args.seed)
    overrides = base_overrides(data, epochs=args.epochs, iters=args.iters_per_epoch, seed=args.seed)
    configs, curves, seconds = [], [], []
    command = "python benchmarks/search_efficiency/tables/make_mask2former.py " + " ".join(argv or sys.argv[1:])
    for index in range(args.max_configs):
        config = space.sample(rng)
        if (time.monotonic() - started) / 60 > args.max_minutes:
            break
        results = workdir / "runs" / f"config_{index:04d}"
        if (results / "status.json").exists():
            (results / "status.json").unlink()
        values = {**overrides, **config, "results_dir": str(results)}
        spec = load_spec(None, action="train", overrides=[f"{k}={json.dumps(v)}" for k, v in values.items()])
        run_started = time.monotonic()
        run_training(config_from_dict(spec), spec)
        curve, epoch_s = kpi_curve(results, "mIoU", args.epochs)
        if not all(np.isfinite(epoch_s)):
            epoch_s = [(time.monotonic() - run_started) / args.epochs] * args.epochs
        configs.append({k: float(v) for k, v in config.items()})
        curves.append([curve])
        seconds.append(epoch_s)
        for stale in results.glob("*.pth"):
            stale.unlink()
        elapsed = (time.monotonic() - started) / 60
        print(f"config {index}: final mIoU {curve[-1]:.4f} best {max(curve):.4f} ({elapsed:.1f} min)", flush=True)
        CurveTable(
            name="mask2former_tiny",
            description=(f"Tiny Mask2Former (configs/quickstart_spec.yaml model) trained by our own trainer on synthetic "
                         f"COCO-panoptic shapes ({args.images} train / {args.val_images} val images, 64 px), "
                         f"{args.iters_per_epoch} steps of batch 2 per epoch, validation mIoU after every epoch."),
            metric="mIoU", direction="maximize", max_epochs=args.epochs, parameters=parameters,
            configs=tuple(configs), curves=np.array(curves), epoch_seconds=np.array(seconds),
            source={"script": "benchmarks/search_efficiency/tables/make_mask2former.py", "command": command,
                    "seed": args.seed, "configs_done": len(configs), "wall_minutes": round(elapsed, 1),
                    "threads": os.environ.get("OMP_NUM_THREADS")},
        ).save(args.out)
    print(f"wrote {args.out}: {len(configs)} configurations x {args.epochs} epochs", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

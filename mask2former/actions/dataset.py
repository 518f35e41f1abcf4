"""`mask2former dataset synth`: write a synthetic dataset in a real format.

    mask2former dataset synth --format coco_panoptic --out DIR --num-images 32 --seed 0 [--size 128]
                              [--split-val 8]

Without `--split-val`, DIR is one dataset root. With `--split-val M`, DIR/train holds N images and DIR/val
holds M others (a different random stream of the same seed).
"""

from __future__ import annotations

import argparse

from mask2former.data.synth import SYNTH_FORMATS, write_synthetic_dataset, write_synthetic_splits


def register(subparsers: argparse._SubParsersAction) -> None:
    dataset = subparsers.add_parser("dataset", help="dataset utilities (synthetic data)")
    actions = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")
    actions.required = True
    synth = actions.add_parser("synth", help="write a synthetic dataset (shapes on stuff bands) in a real format")
    synth.add_argument("--format", required=True, choices=SYNTH_FORMATS, help="on-disk format to write")
    synth.add_argument("--out", required=True, help="output folder (one dataset root, or train/ + val/)")
    synth.add_argument("--num-images", type=int, required=True, help="number of (training) images")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the output is a pure function of it")
    synth.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    synth.add_argument("--split-val", type=int, default=0, metavar="M",
                       help="also write M validation images: OUT/train and OUT/val instead of one root")
    synth.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    if args.split_val and args.split_val > 0:
        roots = write_synthetic_splits(args.out, fmt=args.format, num_train=args.num_images,
                                       num_val=args.split_val, seed=args.seed, size=args.size)
    else:
        roots = {"dataset": write_synthetic_dataset(args.out, fmt=args.format, num_images=args.num_images,
                                                    seed=args.seed, size=args.size)}
    for name, written in roots.items():
        print(f"{name}: {written.format} dataset with {written.num_images} images at {written.root} "
              f"(label map {written.label_map.name})")
    return 0

"""`mask2former train -e spec.yaml [a.b=c ...]`: one training run per the engine–trainer contract.

Exit codes: 0 success or clean stop (SIGTERM, EARLY_STOP_EPOCH); 3 spec error; 6 data error;
10 out of memory (with advice); 1 anything else (with a traceback). Each failure also ends status.json
with a FAILURE line carrying its error class.
"""

from __future__ import annotations

import argparse
import sys

from mask2former.actions.common import add_spec_arguments, load_action_config
from mask2former.training.failures import TrainingOutOfMemory
from skillkit.errors import SpecError


def handle(args: argparse.Namespace) -> int:
    from mask2former.training.trainer import run_training

    cfg, spec = load_action_config(args, "train")
    if cfg.model.export:
        raise SpecError(
            "'model.export' = true asks for the export graph (post-processing inside, TAO's output tensors), "
            "which cannot be trained: set model.export=false here, and run `mask2former export` on the trained "
            "checkpoint to produce the graph."
        )
    try:
        run_training(cfg, spec)
    except TrainingOutOfMemory as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a Mask2Former model (writes status.json and checkpoints)")
    add_spec_arguments(parser)
    parser.set_defaults(func=handle)

"""`mask2former` command line: `mask2former <action> -e spec.yaml [dotted overrides]`.

Each module in `COMMANDS` defines `register(subparsers) -> None`. Only the module of the action being run is
imported, so `mask2former --help` (and `dataset synth`) start without loading torch and Lightning; the
other actions appear in the help from their one-line help here (`tests/skill/test_cli_help.py` checks each
line against what its module registers). User mistakes end as a clear paragraph and the error's exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from skillkit.cli import Command, add_commands
from skillkit.errors import ExitCode, UserError

COMMANDS: tuple[Command, ...] = (
    Command("train", "mask2former.actions.train", "train a Mask2Former model (writes status.json and checkpoints)"),
    Command("evaluate", "mask2former.actions.evaluate",
            "evaluate a trained checkpoint (mIoU, pixel accuracy, PQ or AP)"),
    Command("inference", "mask2former.actions.inference", "predict a folder of images (PNG maps, COCO JSON, overlays)"),
    Command("dataset", "mask2former.actions.dataset", "dataset utilities (synthetic data)"),
    Command("export", "mask2former.actions.export", "export a checkpoint to a verified float32 ONNX graph"),
    Command("quantize", "mask2former.actions.quantize",
            "quantize a checkpoint (torchao) or an ONNX file (onnxruntime, modelopt) and report size and metric change"),
    Command("gen_trt_engine", "mask2former.actions.gen_trt_engine",
            "build a TensorRT FP32/FP16 engine from an exported ONNX file"),
    Command("mlflow_model", "mask2former.actions.mlflow_model",
            "package inference.checkpoint as an MLflow pyfunc model (load_model / models serve)"),
)
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(command.module for command in COMMANDS))


def build_parser(argv: Sequence[str] | None = None, *, load_all: bool = False) -> argparse.ArgumentParser:
    """The parser; only the chosen action's module is imported (all of them with `load_all`)."""
    parser = argparse.ArgumentParser(
        prog="mask2former",
        description="Mask2Former universal segmentation: train, evaluate, inference, export, datasets.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_commands(subparsers, COMMANDS, sys.argv[1:] if argv is None else argv, load_all=load_all)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from mask2former.noise import quiet_libraries

    quiet_libraries()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

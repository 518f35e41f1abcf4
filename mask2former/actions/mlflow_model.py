"""`mask2former mlflow_model -e inference_spec.yaml --output DIR` (MLflow is imported only when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def handle(args: argparse.Namespace) -> int:
    from mask2former.actions.common import load_action_config
    from mask2former.serving.pyfunc import package

    _, spec = load_action_config(args, "inference")
    path = package(spec, Path(args.output))
    print(f"MLflow model of {spec['inference']['checkpoint']} written to {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from mask2former.actions.common import add_spec_arguments

    parser = subparsers.add_parser(
        "mlflow_model", help="package inference.checkpoint as an MLflow pyfunc model (load_model / models serve)")
    add_spec_arguments(parser)
    parser.add_argument("--output", required=True, metavar="DIR", help="the model folder to write")
    parser.set_defaults(func=handle)

"""`mask2former` command line: `mask2former <action> -e spec.yaml [dotted overrides]`.

Each module in `COMMAND_MODULES` defines `register(subparsers) -> None`. User mistakes end as a clear
paragraph and the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from skillkit.errors import ExitCode, UserError

COMMAND_MODULES: tuple[str, ...] = (
    "mask2former.actions.commands",
    "mask2former.data.commands",
    "mask2former.deploy.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mask2former",
        description="Mask2Former universal segmentation: train, evaluate, inference, export, datasets.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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

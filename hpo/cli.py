"""`hpo` command line: one entry point, subcommands contributed by the modules listed below.

Each module in `COMMAND_MODULES` defines `register(subparsers) -> None`, adding its own subcommand(s)
whose handler is stored as `func` on the parsed namespace. User mistakes (`UserError`) end as one clear
paragraph and the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from skillkit.errors import ExitCode, UserError

COMMAND_MODULES: tuple[str, ...] = (
    "hpo.skill.commands",
    "hpo.spec.commands",
    "hpo.space.commands",
    "hpo.tracking.commands",
    "hpo.promotion.commands",
    "hpo.storage.commands",
    "hpo.sweep.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter optimization for Mask2Former: skill contract, search spaces, sweeps.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command, turning user mistakes into a message and an exit code."""
    try:
        result = args.func(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())

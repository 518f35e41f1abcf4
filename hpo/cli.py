"""`hpo` command line: one entry point, subcommands contributed by the modules listed in `COMMANDS`.

Each module defines `register(subparsers) -> None`, adding its own subcommand(s) whose handler is stored as
`func` on the parsed namespace. Only the module of the command being run is imported: the others appear in
`hpo --help` from their one-line help here, so the top-level help and every command start without loading
torch, Ray, MLflow or boto3 for commands that do not use them (`tests/skill/test_cli_help.py` checks that
each line here is the one its module registers). User mistakes (`UserError`) end as one clear paragraph and
the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from skillkit.cli import Command, add_commands
from skillkit.errors import ExitCode, UserError

COMMANDS: tuple[Command, ...] = (
    Command("schemas", "hpo.skill.commands", "generate or check the skill's schemas and spec templates"),
    Command("spec", "hpo.spec.commands", "validate specs; fill them from datasets and parent jobs"),
    Command("space", "hpo.space.commands", "compile, show, check and sample the search space"),
    Command("ui", "hpo.tracking.commands", "serve the sweep's MLflow UI (and Optuna dashboard) on 127.0.0.1"),
    Command("compare", "hpo.tracking.commands", "compare sweeps (workspaces or MLflow experiments) in one table"),
    Command("sync-tracking", "hpo.tracking.commands",
            "log tracking operations kept in a sweep's journal while MLflow was unreachable"),
    Command("promote", "hpo.promotion.commands",
            "promote a sweep's best trial/epoch: best/ checkpoint, export and deploy specs, registry"),
    Command("storage", "hpo.storage.commands", "check, stage and sync data and workspaces on S3"),
    Command("plan", "hpo.driver.commands", "show (and write) what a sweep will run, before running it"),
    Command("run", "hpo.driver.commands", "plan and run a sweep"),
    Command("resume", "hpo.driver.commands", "continue a sweep whose driver stopped (even by SIGKILL)"),
    Command("status", "hpo.driver.commands", "show a sweep's trials (from another terminal)"),
    Command("train", "hpo.driver.commands", "train: a sweep or one plain training, per automl_policy"),
)
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(command.module for command in COMMANDS))


def build_parser(argv: Sequence[str] | None = None, *, load_all: bool = False) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported (all of them with `load_all`)."""
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter optimization for Mask2Former: skill contract, search spaces, sweeps.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_commands(subparsers, COMMANDS, sys.argv[1:] if argv is None else argv, load_all=load_all)
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
    from hpo.noise import quiet_libraries

    quiet_libraries()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())

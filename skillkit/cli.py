"""What both command lines (`hpo`, `mask2former`) share: subcommands registered lazily, and third-party
console noise dropped by its exact text.

Lazy subcommands: a CLI lists its commands as `Command(name, module, help)`; only the module of the command
being run is imported (its `register(subparsers)` adds the real parser), every other command appears in
`--help` from its help line here, so the top-level help and light commands start without importing torch,
Ray, MLflow or boto3. Each CLI's test checks its help lines against what the modules register.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class Command(NamedTuple):
    name: str
    module: str
    help: str


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def add_commands(subparsers: argparse._SubParsersAction, commands: Sequence[Command], argv: Sequence[str], *,
                 load_all: bool = False) -> None:
    """Register the chosen command's module in full (every module with `load_all`); every other command as a
    placeholder carrying its help line."""
    chosen = chosen_command(argv)
    load = {c.module for c in commands if load_all or c.name == chosen}
    registered: set[str] = set()
    for command in commands:
        if command.module in load and command.module not in registered:
            importlib.import_module(command.module).register(subparsers)
            registered.add(command.module)
        elif command.module not in load:
            subparsers.add_parser(command.name, help=command.help, add_help=False)


class DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def drop_noise(records: Mapping[str, Sequence[str]],
               warning_filters: Sequence[tuple[type[Warning], str]] = ()) -> None:
    """Install (once per logger) `DropMessages` for `records` (logger name -> prefixes) and ignore the
    warnings (category, message regex) in `warning_filters`."""
    for name, prefixes in records.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(prefixes))
    for category, message in warning_filters:
        warnings.filterwarnings("ignore", message=message, category=category)

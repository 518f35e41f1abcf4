"""One exception root for the errors we raise on purpose, and the one table of process exit codes.

Every error a user can cause (bad spec, schema, sweep config, dataset, URI) derives from `UserError`, so
both CLIs print a clear paragraph instead of a traceback. Each class carries its exit code from `ExitCode`,
so scripts (and the engine classifying a trainer that died without a status line) can tell the kinds apart.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `hpo` and `mask2former`, written once."""

    SUCCESS = 0
    INTERNAL = 1  # an unexpected error: a traceback follows
    USER = 2
    SPEC = 3
    SCHEMA = 4
    SEARCH_SPACE = 5
    DATA = 6
    SWEEP_CONFIG = 7
    STORAGE = 8
    SWEEP_FAILED = 9  # every trial of a sweep failed
    OUT_OF_MEMORY = 10  # a trainer ran out of (GPU) memory
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class HpoError(Exception):
    """Root of every exception this project (engine, trainer and kit) raises on purpose."""

    exit_code: int = ExitCode.INTERNAL


class UserError(HpoError):
    """A mistake in something the user gave us; shown as a message, never as a traceback."""

    exit_code = ExitCode.USER


class SpecError(UserError):
    """An experiment spec (YAML + overrides) that does not validate against its action schema."""

    exit_code = ExitCode.SPEC


class SchemaError(UserError):
    """A TAO-format schema that cannot be read, or generated files that are stale."""

    exit_code = ExitCode.SCHEMA


class SearchSpaceError(UserError):
    """A search space that cannot be compiled or sampled (bad selection, bad range override)."""

    exit_code = ExitCode.SEARCH_SPACE


class DataError(UserError):
    """A dataset that is missing, malformed or inconsistent with the spec."""

    exit_code = ExitCode.DATA


class SweepConfigError(UserError):
    """A sweep configuration that does not validate."""

    exit_code = ExitCode.SWEEP_CONFIG


class StorageError(UserError):
    """A local path or URI that cannot be read or written."""

    exit_code = ExitCode.STORAGE

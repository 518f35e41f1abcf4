"""One exception root for user mistakes, so CLIs can print a clear paragraph instead of a traceback.

Every error a user can cause (bad spec, schema, sweep config, dataset, URI) derives from `UserError`.
Each subclass carries its own exit code so scripts can tell the kinds apart.
"""

from __future__ import annotations


class HpoError(Exception):
    """Root of every exception this project raises on purpose."""

    exit_code: int = 1


class UserError(HpoError):
    """A mistake in something the user gave us; shown as a message, never as a traceback."""

    exit_code = 2


class SpecError(UserError):
    """An experiment spec (YAML + overrides) that does not validate against its action schema."""

    exit_code = 3


class SchemaError(UserError):
    """A TAO-format schema that cannot be read, or generated files that are stale."""

    exit_code = 4


class SearchSpaceError(UserError):
    """A search space that cannot be compiled or sampled (bad selection, bad range override)."""

    exit_code = 5


class DataError(UserError):
    """A dataset that is missing, malformed or inconsistent with the spec."""

    exit_code = 6


class SweepConfigError(UserError):
    """A sweep configuration that does not validate."""

    exit_code = 7


class StorageError(UserError):
    """A local path or URI that cannot be read or written."""

    exit_code = 8

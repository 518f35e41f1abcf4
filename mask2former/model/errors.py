"""Errors the model package raises for user mistakes (all under `skillkit.errors.UserError`)."""

from __future__ import annotations

from skillkit.errors import DataError


class PretrainedWeightsError(DataError):
    """A pretrained-weights file that is missing, unreadable or does not fit the configured model.

    A DataError (exit code 6) because, like a dataset, it is an input file the spec points to.
    """

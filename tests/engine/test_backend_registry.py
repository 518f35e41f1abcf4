"""One registry names the backends: the sweep config's `backend:` choices and `make_backend`'s classes agree,
and each class fulfils the `Backend` protocol (mypy checks the signatures in `hpo.backends.base`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hpo.sweep
from hpo.backends.base import BACKENDS, backend_class
from hpo.backends.optuna_backend import OptunaBackend


def test_the_config_schema_offers_exactly_the_registered_backends() -> None:
    schema = json.loads((Path(hpo.sweep.__file__).parent / "sweep_schema.json").read_text())
    assert sorted(schema["properties"]["backend"]["enum"]) == sorted(BACKENDS)


def test_a_registered_name_gives_its_class_and_an_unknown_one_is_refused() -> None:
    assert backend_class("optuna") is OptunaBackend
    assert callable(OptunaBackend.run) and callable(OptunaBackend.stop)
    with pytest.raises(ValueError, match="unknown backend 'nevergrad'; registered: optuna, ray"):
        backend_class("nevergrad")

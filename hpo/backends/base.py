"""What every search backend is to the sweep driver, and which backend a config's `backend:` names.

Contract (the driver, `hpo.driver.runner`, is the only caller):

- Construction: `Backend(ctx, observers, guard, planned=...)`. `ctx` is the prepared sweep (config, search
  space, workspace, metric and direction); `observers` receive every trial event, in order, from whatever
  thread the backend runs trials on; `guard` decides when the sweep must stop (budget, consecutive
  failures, interruption); `planned` are trials `hpo plan` fixed in advance, run first and in order.
  Constructing a backend may open its own state (Optuna: the study in its storage) but starts no trial.
- `run()` blocks until the sweep ends: the budget is used, the guard stops it, or `stop()` was called. It
  writes each trial's `trial.json` through the shared trial lifecycle (`hpo.trials`), so the summary,
  resume and promotion never depend on which backend ran; a sweep run again with the same workspace
  resumes (finished trials are kept, interrupted ones continue from their last checkpoint).
- `stop()` may be called from a signal handler, at any time, any number of times: it asks every running
  trial to pause (resumable) and makes `run()` return soon; it does not wait for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hpo.driver.context import SweepContext
    from hpo.driver.guard import SweepGuard
    from hpo.driver.observer import ObserverHub


class Backend(Protocol):
    """A search backend (see the module docstring for the whole contract)."""

    def run(self) -> None:
        """Run the sweep's trials until the budget is used, the guard stops the sweep, or `stop()` is called."""

    def stop(self) -> None:
        """Pause every running trial and make `run()` return; safe from a signal handler."""


class BackendFactory(Protocol):
    def __call__(self, ctx: SweepContext, observers: ObserverHub, guard: SweepGuard,
                 planned: Sequence[Mapping[str, Any]] = ...) -> Backend: ...


# `backend:` in a sweep config -> the class implementing it, imported only when chosen (Ray takes seconds).
BACKENDS: dict[str, str] = {
    "optuna": "hpo.backends.optuna_backend:OptunaBackend",
    "ray": "hpo.backends.ray_backend:RayBackend",
}


if TYPE_CHECKING:  # mypy (run by scripts/test.sh) checks that every registered backend fulfils the protocol
    from hpo.backends.optuna_backend import OptunaBackend
    from hpo.backends.ray_backend import RayBackend

    _IMPLEMENTATIONS: tuple[BackendFactory, ...] = (OptunaBackend, RayBackend)


def backend_class(name: str) -> BackendFactory:
    """The backend class registered under `name` (the sweep config's schema only allows these names)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; registered: {', '.join(sorted(BACKENDS))}")
    module, _, attribute = BACKENDS[name].partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attribute)
    return factory

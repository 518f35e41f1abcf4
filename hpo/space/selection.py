"""Which schema leaves a sweep searches, and in what order.

Selection rules:

- Without an explicit list, the sweep searches the schema's `automl_default_parameters` (the union of
  the lists at every level; TAO repeats a collection's list at the top). A schema that has no such list
  anywhere falls back to the leaves marked `automl_enabled: true`.
- An explicit list (the sweep's `automl_hyperparameters`) replaces the defaults.
- `automl_disabled_parameters` disables **exactly the listed paths**. TAO lists whole sections such as
  `model` and `train` as disabled while their leaves are default-enabled, so a disabled collection
  does *not* disable what is under it; a leaf with `automl_enabled: false` is disabled too. Disabled
  defaults are dropped; explicitly selecting a disabled leaf is an error unless
  `override_automl_disabled_params` is true.
- Parameters the user pinned in the spec are dropped from the defaults (the pin wins); pinning a
  parameter and explicitly selecting it at the same time is an error, because it is ambiguous.
- Unknown paths and collections are errors that name the path (with near matches).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hpo.space.reader import SchemaInfo
from skillkit.errors import SearchSpaceError


def _unknown(info: SchemaInfo, name: str, origin: str) -> SearchSpaceError:
    if name in info.collections:
        leaves = sorted(path for path in info.leaves if path.startswith(name + "."))[:6]
        return SearchSpaceError(
            f"{origin} '{name}' is a collection, not a parameter; select its leaves instead "
            f"(e.g. {', '.join(leaves) or 'none'})."
        )
    close = difflib.get_close_matches(name, list(info.leaves), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return SearchSpaceError(f"{origin} '{name}' does not exist in the schema.{hint}")


def select_names(
    info: SchemaInfo,
    *,
    selection: Sequence[str] | None,
    pinned: Mapping[str, Any],
    override_disabled: bool,
) -> list[str]:
    """The dotted names to search, validated, without duplicates (order is fixed later)."""
    names: list[str] = []
    if selection is not None:
        if isinstance(selection, str):
            raise SearchSpaceError(
                f"automl_hyperparameters must be a list of dotted parameter names, got the string {selection!r}."
            )
        for raw in selection:
            name = str(raw).strip()
            if name not in info.leaves:
                raise _unknown(info, name, "automl_hyperparameters entry")
            if name in info.disabled_parameters and not override_disabled:
                raise SearchSpaceError(
                    f"automl_hyperparameters entry '{name}' is in the schema's automl_disabled_parameters; "
                    "set override_automl_disabled_params: true to search it anyway."
                )
            if name in pinned:
                raise SearchSpaceError(
                    f"automl_hyperparameters entry '{name}' is also pinned in the spec (to {pinned[name]!r}); "
                    "either search it or pin it, not both."
                )
            if name not in names:
                names.append(name)
        if not names:
            raise SearchSpaceError("automl_hyperparameters is empty; list at least one parameter or leave it out.")
        return names
    for name in info.default_parameters:
        if name not in info.leaves:
            raise _unknown(info, name, "the schema's automl_default_parameters entry")
        if name in info.disabled_parameters and not override_disabled:
            continue
        if name in pinned:
            continue
        names.append(name)
    if not names:
        raise SearchSpaceError(
            "the schema's automl_default_parameters leave nothing to search (all are disabled or pinned); "
            "list parameters explicitly in automl_hyperparameters."
        )
    return names


def topological_order(names: Iterable[str], parents: Mapping[str, str | None]) -> list[str]:
    """Parents before dependents; otherwise alphabetical, so the order is stable across regenerations."""
    remaining = sorted(set(names))
    placed: list[str] = []
    while remaining:
        progress = False
        for name in list(remaining):
            parent = parents.get(name)
            if parent is None or parent not in remaining:
                placed.append(name)
                remaining.remove(name)
                progress = True
                break
        if not progress:
            cycle = " -> ".join(remaining)
            raise SearchSpaceError(f"depends_on forms a cycle among: {cycle}.")
    return placed

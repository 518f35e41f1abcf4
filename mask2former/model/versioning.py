"""Versioned state dicts: a module says which layout it saves and how to upgrade older ones.

PyTorch stores each module's `_version` in `state_dict._metadata[prefix]["version"]` (kept by
`torch.save`). A `VersionedModule` declares `_version` and `_migrations`, a map from an old
version v to a function that rewrites that module's keys (under `prefix`) from layout v to v+1.
On load, the steps from the saved version up to the current one run in order, so checkpoints
written before a rename keep loading.

A state dict without metadata (e.g. rebuilt as a plain dict) has no saved version; then every
step runs, so each step must be idempotent: rename a key only if its old form is present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import ClassVar

from torch import Tensor, nn

#: (state_dict, prefix) -> None, rewriting keys under `prefix` in place.
Migration = Callable[[MutableMapping[str, Tensor], str], None]


def rename_key(state_dict: MutableMapping[str, Tensor], prefix: str, old: str, new: str) -> None:
    """Move every key `prefix + old + rest` to `prefix + new + rest` (no-op when absent)."""
    for key in [k for k in state_dict if k.startswith(prefix + old)]:
        state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)


def migrate_state_dict(
    state_dict: MutableMapping[str, Tensor],
    prefix: str,
    *,
    saved_version: int | None,
    current_version: int,
    migrations: Mapping[int, Migration],
) -> list[int]:
    """Apply migrations `saved_version .. current_version - 1` (all of them if unknown); return those run."""
    start = 1 if saved_version is None else saved_version
    ran = []
    for version in range(start, current_version):
        step = migrations.get(version)
        if step is not None:
            step(state_dict, prefix)
            ran.append(version)
    return ran


class VersionedModule(nn.Module):
    """nn.Module whose `load_state_dict` upgrades older layouts via `_migrations`."""

    _version: int = 1
    _migrations: ClassVar[Mapping[int, Migration]] = {}

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        migrate_state_dict(
            state_dict, prefix, saved_version=local_metadata.get("version"),
            current_version=self._version, migrations=self._migrations,
        )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

"""Registering a promoted checkpoint in the MLflow Model Registry without leaking secrets.

A trainer checkpoint embeds the full spec it was trained with (so it can be rebuilt and resumed), and that
spec may hold an `encryption_key` or credentials. The registry is shared, so when the winning spec holds any
secret the uploaded file is a copy whose embedded values are redacted; the weights are untouched, and the
local promoted checkpoint stays byte-identical to what the trial wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.redaction import REDACTED, Redactor, is_secret_key


def holds_secrets(data: Any) -> bool:
    """True when any secret-named key in `data` (nested) has a non-empty value."""
    if isinstance(data, Mapping):
        return any(
            (is_secret_key(str(key)) and value not in (None, "", [], {})) or holds_secrets(value)
            for key, value in data.items()
        )
    if isinstance(data, (list, tuple)):
        return any(holds_secrets(item) for item in data)
    return False


def registry_checkpoint(checkpoint: Path, train_spec: Mapping[str, Any], work_dir: Path, redactor: Redactor) -> Path:
    """The file to upload for `checkpoint`: itself, or a redacted copy in `work_dir` when it embeds a secret.

    torch's format stores pickled strings as plain bytes, so a secret that does not occur in the file's bytes
    is not in the checkpoint; only then is the file uploaded as it is, without loading it.
    """
    if not holds_secrets(train_spec):
        return checkpoint
    redactor.learn(train_spec)
    secrets = [value.encode() for value in redactor.secret_values()]
    if not _contains_any(checkpoint, secrets):
        return checkpoint
    import torch

    data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / checkpoint.name
    torch.save(_redacted(data, redactor), target)
    return target


def _contains_any(path: Path, needles: list[bytes], chunk: int = 16 * 1024 * 1024) -> bool:
    if not needles:
        return False
    overlap = max(len(needle) for needle in needles) - 1
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            window = tail + block
            if any(needle in window for needle in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def _redacted(data: Any, redactor: Redactor) -> Any:
    if isinstance(data, Mapping):
        mapping_type: Any = type(data)  # keeps OrderedDict state_dicts as OrderedDicts
        return mapping_type(
            (key, REDACTED if is_secret_key(str(key)) and isinstance(value, (str, bytes)) and value
             else _redacted(value, redactor))
            for key, value in data.items()
        )
    if isinstance(data, list):
        return [_redacted(item, redactor) for item in data]
    if isinstance(data, tuple):
        return tuple(_redacted(item, redactor) for item in data)
    if isinstance(data, str):
        return redactor.literals(data)
    return data

"""Tracking settings: where a sweep is logged, read once from the sweep config's `tracking` section.

```yaml
tracking:
  enabled: true                       # false: no MLflow logging, no registry (promotion still writes best/)
  tracking_uri: http://mlflow:5000    # default sqlite:///<workspace>/<sweep>/mlflow.db
  registry_uri: null                  # default: the tracking URI
  experiment_name: null               # default: the sweep name
  artifact_location: null             # default for local stores: <workspace>/<sweep>/mlartifacts
  registered_model_name: mask2former
  model_alias: champion
  http_timeout_s: 10                  # per request (MLFLOW_HTTP_REQUEST_TIMEOUT while we talk to a server)
  http_max_retries: 0                 # MLFLOW_HTTP_REQUEST_MAX_RETRIES; the journal is our retry
  retry_interval_s: 5                 # first wait before talking to an unreachable server again (doubles, max 60)
```
Any server URI works the same as the default SQLite file. Mistakes raise `SweepConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.errors import SweepConfigError

SECTION = "tracking"
DEFAULT_MODEL_NAME = "mask2former"
DEFAULT_ALIAS = "champion"
DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"

_KNOWN_KEYS = {
    "enabled", "tracking_uri", "registry_uri", "experiment_name", "artifact_location", "registered_model_name",
    "model_alias", "http_timeout_s", "http_max_retries", "retry_interval_s",
}


@dataclasses.dataclass(frozen=True)
class TrackingSettings:
    """Resolved tracking configuration for one sweep directory."""

    tracking_uri: str
    experiment_name: str
    registry_uri: str | None = None
    artifact_location: str | None = None
    registered_model_name: str = DEFAULT_MODEL_NAME
    alias: str = DEFAULT_ALIAS
    enabled: bool = True
    http_timeout_s: float = 10.0
    http_max_retries: int = 0
    retry_interval_s: float = 5.0

    @property
    def effective_registry_uri(self) -> str:
        return self.registry_uri or self.tracking_uri

    @property
    def is_server(self) -> bool:
        """True for HTTP(S) tracking servers, the only stores that can "go away" between two calls."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @classmethod
    def for_sweep(cls, sweep_dir: str | os.PathLike[str], config: Mapping[str, Any] | None = None) -> TrackingSettings:
        """Settings for `sweep_dir` from the (resolved) sweep config; the config's `name` names the experiment."""
        sweep_dir = Path(sweep_dir).resolve()
        config = config or {}
        section = config.get(SECTION) or {}
        if not isinstance(section, Mapping):
            raise SweepConfigError(f"sweep config '{SECTION}' must be a mapping of settings, got {section!r}.")
        unknown = sorted(set(section) - _KNOWN_KEYS)
        if unknown:
            raise SweepConfigError(
                f"sweep config '{SECTION}' has unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KNOWN_KEYS))}."
            )
        name = str(config.get("name") or sweep_dir.name)
        tracking_uri = _optional_str(section, "tracking_uri") or f"sqlite:///{sweep_dir / DB_FILENAME}"
        artifact_location = _optional_str(section, "artifact_location")
        if artifact_location is None and not tracking_uri.startswith(("http://", "https://", "databricks")):
            # A direct database store has no server to proxy artifacts: keep them beside the database.
            artifact_location = (sweep_dir / ARTIFACTS_DIRNAME).as_uri()
        return cls(
            tracking_uri=tracking_uri,
            experiment_name=_optional_str(section, "experiment_name") or name,
            registry_uri=_optional_str(section, "registry_uri"),
            artifact_location=artifact_location,
            registered_model_name=_optional_str(section, "registered_model_name") or DEFAULT_MODEL_NAME,
            alias=_optional_str(section, "model_alias") or DEFAULT_ALIAS,
            enabled=_bool(section, "enabled", True),
            http_timeout_s=_number(section, "http_timeout_s", 10.0, minimum=0.1),
            http_max_retries=int(_number(section, "http_max_retries", 0, minimum=0, integer=True)),
            retry_interval_s=_number(section, "retry_interval_s", 5.0, minimum=0.0),
        )


def _optional_str(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SweepConfigError(f"sweep config '{SECTION}.{key}' must be a string, got {value!r}.")
    return value


def _bool(section: Mapping[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise SweepConfigError(f"sweep config '{SECTION}.{key}' must be true or false, got {value!r}.")
    return value


def _number(section: Mapping[str, Any], key: str, default: float, *, minimum: float, integer: bool = False) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise SweepConfigError(f"sweep config '{SECTION}.{key}' must be {kind}, got {value!r}.")
    if value < minimum:
        raise SweepConfigError(f"sweep config '{SECTION}.{key}' must be >= {minimum}, got {value!r}.")
    return float(value)

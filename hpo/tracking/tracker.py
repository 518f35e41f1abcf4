"""The tracker: the one object the rest of the engine uses to log to MLflow.

Every call redacts its input, appends one operation to the sweep's journal and then tries to apply what is
pending. Nothing here raises because MLflow is unreachable: the operation stays in the journal, the tracker
waits `retry_interval_s` (doubling, at most a minute) before talking to the store again, and the next call
or `flush(force=True)` replays it. Runs are named by local keys (`"sweep"`, `"trial/<id>"`), never by MLflow
run ids, because the id does not exist until the store has answered.

HTTP calls use short timeouts and no client retries (MLFLOW_HTTP_REQUEST_TIMEOUT /
MLFLOW_HTTP_REQUEST_MAX_RETRIES are set from the settings only while the tracker talks to the store, unless
the user set them), so an outage costs the sweep milliseconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo.tracking.journal import Journal
from hpo.tracking.replay import FlushResult, replay
from hpo.tracking.settings import TrackingSettings
from hpo.tracking.sqlite_store import ensure_complete_store
from skillkit.redaction import Redactor
from skillkit.status import STATUS_FILE

logger = logging.getLogger(__name__)

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_BACKOFF_S = 60.0
_TEXT_SUFFIXES = {".log", ".txt", ".csv", ".md", ".out", ".err"}
_STRUCTURED_SUFFIXES = {".yaml", ".yml", ".json"}


class Tracker:
    """Journaled MLflow logging for one sweep directory."""

    def __init__(self, settings: TrackingSettings, sweep_dir: str | os.PathLike[str], *,
                 redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.sweep_dir = Path(sweep_dir).resolve()
        self.journal = Journal(self.sweep_dir)
        self.redactor = redactor or Redactor()
        self._client: Any = None
        self._next_attempt = 0.0
        self._backoff = settings.retry_interval_s
        self._offline_reported = False

    # -- identities --------------------------------------------------------------------------------------
    def run_id(self, key: str) -> str | None:
        """The MLflow run id of a local run key, once the store has created it."""
        return self.journal.load_state()["runs"].get(key)

    def has_run(self, key: str) -> bool:
        """True when the journal already holds the creation of run `key` (applied or not)."""
        return key in self.journal.run_keys()

    def model_version(self, version_key: str) -> dict[str, Any] | None:
        return self.journal.load_state()["model_versions"].get(version_key)

    @property
    def experiment_id(self) -> str | None:
        return self.journal.load_state().get("experiment_id")

    # -- recording ---------------------------------------------------------------------------------------
    def ensure_experiment(self, tags: Mapping[str, Any] | None = None) -> None:
        self._record({"op": "experiment", "name": self.settings.experiment_name,
                      "artifact_location": self.settings.artifact_location, "tags": self._tags(tags or {})})

    def start_run(self, key: str, *, parent: str | None = None, run_name: str | None = None,
                  start_time: float | None = None, tags: Mapping[str, Any] | None = None) -> bool:
        """Create run `key` (under `parent`), or mark it RUNNING again if the journal already created it.

        Returns True when the run is new.
        """
        if self.has_run(key):
            self._record({"op": "reopen_run", "key": key})
            if tags:
                self.set_tags(key, tags)
            return False
        self._record({"op": "create_run", "key": key, "parent": parent, "run_name": run_name,
                      "start_time": _millis(start_time), "tags": self._tags(tags or {})})
        return True

    def log_params(self, key: str, params: Mapping[str, Any]) -> None:
        clean = {}
        for name, value in self.redactor.mapping(params).items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            clean[name[:MAX_KEY]] = _truncate(text, MAX_PARAM_VALUE)
        if clean:
            self._record({"op": "log", "key": key, "params": clean})

    def set_tags(self, key: str, tags: Mapping[str, Any]) -> None:
        if tags:
            self._record({"op": "log", "key": key, "tags": self._tags(tags)})

    def log_metrics(self, key: str, metrics: Mapping[str, Any], *, step: int, timestamp: float | None = None) -> None:
        """Log numeric metrics at `step`; non-numeric values are ignored, nested mappings become dotted names."""
        stamp = _millis(timestamp)
        rows = [[name[:MAX_KEY], value, int(step), stamp] for name, value in _numeric_items(metrics)]
        if rows:
            self._record({"op": "log", "key": key, "metrics": rows})

    def log_artifact(self, key: str, path: str | os.PathLike[str], *, artifact_path: str | None = None,
                     name: str | None = None, redact: bool = True) -> None:
        """Upload a file (or a folder, in place) to run `key`, redacted and snapshotted when it is text."""
        path = Path(path)
        if not path.exists():
            logger.warning("tracking: artifact '%s' does not exist; not logged", path)
            return
        name = name or path.name
        if path.is_dir() or not redact:
            stored = str(path.resolve()) if path.is_dir() else self.journal.snapshot_file(path, name)
        else:
            stored = self.journal.snapshot_bytes(self._redacted_file_bytes(path), name)
        self._record({"op": "artifact", "key": key, "file": stored, "artifact_path": artifact_path})

    def log_yaml(self, key: str, data: Any, name: str, *, artifact_path: str | None = None) -> None:
        """Upload a redacted YAML rendering of `data` as `name`."""
        text = yaml.safe_dump(self.redactor.data(data), sort_keys=False, default_flow_style=False, width=120)
        stored = self.journal.snapshot_bytes(text.encode("utf-8"), name)
        self._record({"op": "artifact", "key": key, "file": stored, "artifact_path": artifact_path})

    def log_text(self, key: str, text: str, name: str, *, artifact_path: str | None = None) -> None:
        """Upload redacted `text` as the file `name`."""
        stored = self.journal.snapshot_bytes(self.redactor.text(text).encode("utf-8"), name)
        self._record({"op": "artifact", "key": key, "file": stored, "artifact_path": artifact_path})

    def log_json(self, key: str, data: Any, name: str, *, artifact_path: str | None = None) -> None:
        text = json.dumps(self.redactor.data(data), indent=2, sort_keys=True, default=str)
        stored = self.journal.snapshot_bytes(text.encode("utf-8"), name)
        self._record({"op": "artifact", "key": key, "file": stored, "artifact_path": artifact_path})

    def end_run(self, key: str, status: str, *, end_time: float | None = None) -> None:
        """Terminate run `key` with an MLflow status (FINISHED, KILLED, FAILED)."""
        self._record({"op": "terminate", "key": key, "status": status, "end_time": _millis(end_time)})

    def register_model(self, key: str, *, artifact_path: str, version_key: str, tags: Mapping[str, Any],
                       description: str | None = None, logged_model: str | None = None) -> None:
        """Register the artifacts of run `key` under `artifact_path` (or the logged MLflow model whose version key
        is `logged_model`) as a new model version with the alias."""
        self._record({"op": "register", "key": key, "name": self.settings.registered_model_name,
                      "artifact_path": artifact_path, "version_key": version_key, "alias": self.settings.alias,
                      "tags": self._tags(tags), "description": description, "logged_model": logged_model})

    def log_model(self, key: str, model_dir: str | os.PathLike[str], *, version_key: str, name: str,
                  tags: Mapping[str, Any], params: Mapping[str, Any], step: int,
                  link_runs: tuple[str, ...] = ()) -> None:
        """Log the MLflow model folder `model_dir` (kept in place until applied) as a logged model of run `key`,
        also listed among the outputs of the runs in `link_runs`."""
        clean_params = {k[:MAX_KEY]: _truncate(v if isinstance(v, str) else json.dumps(v, default=str), MAX_PARAM_VALUE)
                        for k, v in self.redactor.mapping(params).items()}
        self._record({"op": "log_model", "key": key, "dir": str(Path(model_dir).resolve()), "version_key": version_key,
                      "name": name, "tags": self._tags(tags), "params": clean_params, "step": int(step),
                      "model_type": "mask2former", "link_runs": list(link_runs)})

    def logged_model_id(self, version_key: str) -> str | None:
        return self.journal.load_state().get("logged_models", {}).get(version_key)

    # -- applying ----------------------------------------------------------------------------------------
    def flush(self, *, force: bool = False) -> FlushResult:
        """Apply pending operations now (or after the back-off unless `force`); never raises for outages."""
        if not force and time.monotonic() < self._next_attempt:
            return FlushResult(0, len(self.journal.pending()), 0, "waiting before retrying the tracking store")
        # The client is created under the journal's lock too: creating a local SQLite store migrates its
        # schema, which several processes sharing one journal (joined workers) must not do at once.
        with self._http_settings(), self.journal.locked():
            result = replay(self.journal, self.client, probe=self._probe)
        if result.complete:
            if self._offline_reported:
                logger.warning("tracking store %s is reachable again; pending operations were logged",
                               self.settings.tracking_uri)
            self._offline_reported = False
            self._backoff = self.settings.retry_interval_s
            self._next_attempt = 0.0
        else:
            if not self._offline_reported:
                logger.warning("tracking store %s is unreachable (%s); %d operation(s) kept in %s and logged "
                               "when it returns", self.settings.tracking_uri, result.error, result.pending,
                               self.journal.path)
            self._offline_reported = True
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(max(self._backoff * 2, 0.0), MAX_BACKOFF_S)
        return result

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            for uri in {self.settings.tracking_uri, self.settings.effective_registry_uri}:
                ensure_complete_store(uri)
            self._client = MlflowClient(tracking_uri=self.settings.tracking_uri,
                                        registry_uri=self.settings.effective_registry_uri)
        return self._client

    # -- internals ---------------------------------------------------------------------------------------
    def _record(self, operation: dict[str, Any]) -> None:
        self.journal.append(operation)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - tracking must never stop a sweep; the operation stays journaled
            logger.warning("tracking: applying journaled operations failed; they stay pending", exc_info=True)

    def _tags(self, tags: Mapping[str, Any]) -> dict[str, str]:
        clean = {}
        for name, value in self.redactor.mapping(tags).items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            clean[name[:MAX_KEY]] = _truncate(text, MAX_TAG_VALUE)
        return clean

    def _redacted_file_bytes(self, path: Path) -> bytes:
        suffix = path.suffix.lower()
        if suffix in _STRUCTURED_SUFFIXES or path.name == STATUS_FILE:
            text = path.read_text(encoding="utf-8", errors="replace")
            return self._redacted_structured(text, suffix).encode("utf-8")
        if suffix in _TEXT_SUFFIXES or suffix == ".jsonl":
            return self.redactor.text(path.read_text(encoding="utf-8", errors="replace")).encode("utf-8")
        if suffix in {".html", ".htm", ".svg"}:
            # Generated plots embed plotly.js, whose code is full of "token:"-like text; only known secret
            # values are masked so the page keeps working.
            return self.redactor.literals(path.read_text(encoding="utf-8", errors="replace")).encode("utf-8")
        return path.read_bytes()

    def _redacted_structured(self, text: str, suffix: str) -> str:
        if suffix == ".json":
            try:
                return json.dumps(self.redactor.data(json.loads(text)), indent=2, sort_keys=True)
            except json.JSONDecodeError:
                return "\n".join(self._redacted_json_line(line) for line in text.splitlines()) + "\n"
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return self.redactor.text(text)
        return yaml.safe_dump(self.redactor.data(data), sort_keys=False, default_flow_style=False, width=120)

    def _redacted_json_line(self, line: str) -> str:
        try:
            return json.dumps(self.redactor.data(json.loads(line)))
        except json.JSONDecodeError:
            return self.redactor.text(line)

    def _probe(self) -> bool:
        self.client.search_experiments(max_results=1)
        return True

    @contextlib.contextmanager
    def _http_settings(self) -> Iterator[None]:
        wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(math.ceil(self.settings.http_timeout_s))),
                  "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.settings.http_max_retries),
                  # the client prints "View run ..." links on every run end; the driver's console is not its own
                  "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
        saved = {name: os.environ.get(name) for name in wanted}
        for name, value in wanted.items():
            if saved[name] is None:
                os.environ[name] = value
        try:
            yield
        finally:
            for name, previous in saved.items():
                if previous is None:
                    os.environ.pop(name, None)


def _millis(seconds: float | None) -> int:
    return int(round((time.time() if seconds is None else seconds) * 1000))


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "...[truncated]"


def _numeric_items(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for name, value in metrics.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from _numeric_items(value, full + ".")
        elif isinstance(value, bool):
            continue
        elif isinstance(value, (int, float)) and not math.isinf(float(value)):
            yield full, float(value)

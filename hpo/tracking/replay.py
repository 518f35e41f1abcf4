"""Apply pending journal operations to an MLflow store, idempotently, stopping when the store is away.

Each operation kind has one handler that can run any number of times with the same outcome:
- `create_run` first searches for a run tagged with the operation's unique run key (a create whose
  response was lost still counts), and only then creates one;
- metrics carry the timestamp of the moment they were journaled, so re-sending them is a no-op for
  MLflow's stores (their primary key is key/timestamp/step/value);
- params, tags, artifacts (same path), termination and aliases overwrite with the same value;
- a model version, and a logged MLflow model, is looked up by the `hpo.version_key` tag before one is
  created; a model already among a run's outputs is not added again.

How failures are told apart: an error whose MLflow error code says "this request is wrong" skips the
operation for good (recorded in state.json under `skipped`). Authentication errors are not among them: the
probe fails as well, so operations wait until the credentials are fixed. Any other error triggers a probe of the store:
if the probe fails the store is away, replay stops and the operation stays pending; if the store answers,
the operation is tried once more (the store may have just come back) and skipped if it still fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

from hpo.tracking.journal import Journal

logger = logging.getLogger(__name__)

RUN_KEY_TAG = "hpo.run_key"
VERSION_KEY_TAG = "hpo.version_key"

_PERMANENT_CODES = frozenset(
    {
        "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST", "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND",
        "INVALID_STATE", "INVALID_STATE_TRANSITION", "FEATURE_DISABLED", "NOT_IMPLEMENTED", "ENDPOINT_NOT_FOUND",
    }
)
_BATCH_PARAMS_TAGS = 100
_BATCH_METRICS = 1000


class OperationRejected(Exception):
    """An operation that can never succeed (its run was never created, its file is gone)."""


@dataclasses.dataclass(frozen=True)
class FlushResult:
    """What one replay achieved."""

    applied: int
    pending: int
    skipped: int
    error: str | None = None  # why replay stopped early (store unreachable); None when nothing is left

    @property
    def complete(self) -> bool:
        return self.pending == 0


def is_permanent(error: BaseException) -> bool:
    """True when the store understood the request and refused it; retrying cannot help."""
    if isinstance(error, OperationRejected):
        return True
    code = getattr(error, "error_code", None)
    return isinstance(code, str) and code in _PERMANENT_CODES


def replay(journal: Journal, client: Any, *, probe: Callable[[], bool]) -> FlushResult:
    """Apply every pending operation of `journal` through `client` (an `MlflowClient`), in order."""
    with journal.locked():
        state = journal.load_state()
        pending = journal.pending(state)
        applied = skipped = 0
        for index, entry in enumerate(pending):
            outcome = _apply_with_retry(entry, client, state, journal, probe)
            if outcome is None:
                return FlushResult(applied, len(pending) - index, skipped, state.get("last_error"))
            if outcome:
                applied += 1
            else:
                skipped += 1
            state["applied"] = int(entry["seq"])
            state["offset"] = int(entry["_end"])
            state.pop("last_error", None)
            journal.save_state(state)
        return FlushResult(applied, 0, skipped, None)


def _apply_with_retry(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal,
                      probe: Callable[[], bool]) -> bool | None:
    """True: applied. False: skipped for good. None: the store is away, stop here."""
    for attempt in range(2):
        try:
            _HANDLERS[entry["op"]](entry, client, state, journal)
            return True
        except Exception as error:  # noqa: BLE001 - every failure is classified below, none may escape
            if not is_permanent(error):
                if not _probe_quietly(probe):
                    state["last_error"] = f"{type(error).__name__}: {str(error)[:300]}"
                    journal.save_state(state)
                    return None
                if attempt == 0:
                    continue
            state["skipped"].append(
                {"seq": entry["seq"], "op": entry["op"], "key": entry.get("key"), "error": str(error)[:500]}
            )
            logger.warning("tracking operation #%s (%s %s) skipped for good: %s", entry["seq"], entry["op"],
                           entry.get("key", ""), str(error)[:300])
            return False
    return False


def _probe_quietly(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:  # noqa: BLE001 - a probe that raises means "unreachable"
        return False


# -- handlers ------------------------------------------------------------------------------------------
def _run_id(state: dict[str, Any], key: str) -> str:
    run_id = state["runs"].get(key)
    if not run_id:
        raise OperationRejected(f"run '{key}' was never created in MLflow")
    return run_id


def _experiment(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    experiment = client.get_experiment_by_name(entry["name"])
    if experiment is None:
        try:
            experiment_id = client.create_experiment(entry["name"], artifact_location=entry.get("artifact_location"))
        except Exception as error:
            if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment_id = client.get_experiment_by_name(entry["name"]).experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    for key, value in (entry.get("tags") or {}).items():
        client.set_experiment_tag(experiment_id, key, value)
    state["experiment_id"] = experiment_id


def _create_run(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    from mlflow.entities import ViewType

    experiment_id = state.get("experiment_id")
    if not experiment_id:
        raise OperationRejected("no MLflow experiment was created for this sweep")
    key = str(entry["key"])
    run_key = f"{journal.journal_id}:{key}"
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", run_view_type=ViewType.ACTIVE_ONLY,
        max_results=1,
    )
    if found:
        state["runs"][key] = found[0].info.run_id
        return
    tags = dict(entry.get("tags") or {})
    tags[RUN_KEY_TAG] = run_key
    if entry.get("parent"):
        tags["mlflow.parentRunId"] = _run_id(state, str(entry["parent"]))
    run = client.create_run(experiment_id, start_time=entry.get("start_time"), tags=tags, run_name=entry.get("run_name"))
    state["runs"][key] = run.info.run_id


def _reopen_run(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    client.update_run(_run_id(state, str(entry["key"])), status="RUNNING")


def _log(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    from mlflow.entities import Metric, Param, RunTag

    run_id = _run_id(state, str(entry["key"]))
    params = [Param(str(k), str(v)) for k, v in (entry.get("params") or {}).items()]
    tags = [RunTag(str(k), str(v)) for k, v in (entry.get("tags") or {}).items()]
    metrics = [Metric(str(name), float(value), int(timestamp), int(step))
               for name, value, step, timestamp in entry.get("metrics") or []]
    for start in range(0, len(params), _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=params[start:start + _BATCH_PARAMS_TAGS])
    for start in range(0, len(tags), _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, tags=tags[start:start + _BATCH_PARAMS_TAGS])
    for start in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[start:start + _BATCH_METRICS])


def _artifact(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    run_id = _run_id(state, str(entry["key"]))
    path = journal.resolve(entry["file"])
    if not path.exists():
        raise OperationRejected(f"artifact file '{path}' no longer exists")
    if path.is_dir():
        client.log_artifacts(run_id, str(path), artifact_path=entry.get("artifact_path"))
    else:
        client.log_artifact(run_id, str(path), artifact_path=entry.get("artifact_path"))


def _terminate(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    client.set_terminated(_run_id(state, str(entry["key"])), status=entry["status"], end_time=entry.get("end_time"))


def _already_output(client: Any, run_id: str, model_id: str) -> bool:
    outputs = getattr(client.get_run(run_id), "outputs", None)
    return any(getattr(o, "model_id", None) == model_id for o in getattr(outputs, "model_outputs", None) or [])


def _log_model(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    """An MLflow model folder as a LoggedModel of the run (found again by its version key, never duplicated),
    listed among the outputs of the run and of the runs in `link_runs` (the sweep's parent run)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    logged = state.setdefault("logged_models", {})
    version_key = str(entry["version_key"])
    run_id = _run_id(state, str(entry["key"]))
    experiment_id = state.get("experiment_id")
    source = journal.resolve(entry["dir"])
    if not (source / "MLmodel").is_file():
        raise OperationRejected(f"MLflow model folder '{source}' has no MLmodel file")
    found = client.search_logged_models([experiment_id], filter_string=f"tags.`{VERSION_KEY_TAG}` = '{version_key}'",
                                        max_results=1)
    if found:
        model = found[0]
    else:
        tags = {**(entry.get("tags") or {}), VERSION_KEY_TAG: version_key}
        model = client._create_logged_model(experiment_id, name=entry.get("name"), source_run_id=run_id, tags=tags,
                                            params=entry.get("params") or None, model_type=entry.get("model_type"),
                                            flavor="python_function")
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "model"

        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source, local, copy_function=link_or_copy)
        description = Model.load(str(local / "MLmodel"))
        description.model_id, description.run_id = model.model_id, run_id
        description.artifact_path = model.artifact_location
        (local / "MLmodel").unlink()  # a hard link to the journaled folder: write a new file, not through it
        description.save(str(local / "MLmodel"))
        client.log_model_artifacts(model.model_id, str(local))
    client.finalize_logged_model(model.model_id, "READY")
    for key in [str(entry["key"]), *[str(k) for k in entry.get("link_runs") or []]]:
        linked = _run_id(state, key)
        if not _already_output(client, linked, model.model_id):
            client.log_outputs(linked, [LoggedModelOutput(model.model_id, step=int(entry.get("step") or 0))])
    logged[version_key] = model.model_id


@contextlib.contextmanager
def _process_tracking_uri(client: Any) -> Iterator[None]:
    """MLflow 3's SQL registry resolves a `models:/<id>` source through the process-wide tracking URI (its
    own TODO in sqlalchemy_store.create_model_version), which need not be this sweep's store: point it at the
    client's for the call. The module global is set directly: `mlflow.set_tracking_uri(None)` on the way back
    would also delete the user's MLFLOW_TRACKING_URI from the environment."""
    from mlflow.tracking._tracking_service import utils

    uri = getattr(client, "tracking_uri", None)
    saved = utils._tracking_uri
    if uri:
        utils._tracking_uri = uri
    try:
        yield
    finally:
        utils._tracking_uri = saved


def _link_version_to_logged_model(client: Any, model_id: str, name: str, version: str) -> None:
    """The logged model's `mlflow.modelVersions` tag lists its registered versions (what `log_model(...,
    registered_model_name=...)` writes, and what the UI reads to show a logged model as registered)."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    current = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    listed = json.loads(current) if current else []
    if {"name": name, "version": version} not in [{"name": v.get("name"), "version": str(v.get("version"))}
                                                  for v in listed]:
        listed.append({"name": name, "version": version})
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(listed)})


def _register(entry: dict[str, Any], client: Any, state: dict[str, Any], journal: Journal) -> None:
    name = entry["name"]
    run_id = _run_id(state, str(entry["key"]))
    model_id = None
    if entry.get("logged_model"):
        model_id = state.get("logged_models", {}).get(str(entry["logged_model"]))
        if model_id is None:
            raise OperationRejected(f"the MLflow model '{entry['logged_model']}' was never logged")
    try:
        client.create_registered_model(name, description=entry.get("description"))
    except Exception as error:
        if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
            raise
    version_key = entry["version_key"]
    existing = [
        version for version in client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        if version.tags.get(VERSION_KEY_TAG) == version_key
    ]
    if existing:
        version = str(existing[0].version)
    else:
        if model_id is not None:
            source = f"models:/{model_id}"  # the version then names its logged model (ModelVersion.model_id)
        else:
            source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{entry['artifact_path']}"
        with _process_tracking_uri(client):
            created = client.create_model_version(
                name, source, run_id=run_id, tags={VERSION_KEY_TAG: version_key},
                description=entry.get("description"), model_id=model_id,
            )
        version = str(created.version)
    if model_id is not None:
        _link_version_to_logged_model(client, model_id, name, version)
    for key, value in (entry.get("tags") or {}).items():
        client.set_model_version_tag(name, version, key, str(value))
    if entry.get("alias"):
        client.set_registered_model_alias(name, entry["alias"], version)
    state["model_versions"][version_key] = {"name": name, "version": version, "run_id": run_id}


_HANDLERS: dict[str, Callable[[dict[str, Any], Any, dict[str, Any], Journal], None]] = {
    "experiment": _experiment,
    "create_run": _create_run,
    "reopen_run": _reopen_run,
    "log": _log,
    "artifact": _artifact,
    "terminate": _terminate,
    "register": _register,
    "log_model": _log_model,
}

"""`hpo ui SWEEP_DIR`: the sweep in the dashboards users already know, in one command.

- The MLflow UI on the sweep's tracking store: for the default SQLite store (or any database URI) a
  `mlflow server` is started on 127.0.0.1; a sweep logged to a tracking server is already browsable there,
  so its URL is printed instead. The printed link opens the sweep's experiment (runs table with the
  parent/child tree and the metric charts) and its parent run.
- For Optuna-backed sweeps, `optuna-dashboard` on the sweep's Optuna storage, also on 127.0.0.1.

Both are child processes in their own process groups: Ctrl-C (or SIGTERM) stops them and the command exits
0; a dashboard that dies on its own ends the command with its log's last lines. Ports are free ones unless
given. Sweeps logged before the experiment kind was set get it now (see `EXPERIMENT_KIND_TAG`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.tracking import sweep_files
from hpo.tracking.settings import TrackingSettings
from skillkit.errors import UserError

# MLflow 3's UI opens an experiment in its GenAI view (traces, judges, prompts) unless the experiment's
# `mlflow.experimentKind` tag names a machine-learning kind; "custom_model_development" is the one its
# experiment-kind selector calls "Machine learning" (mlflow/server/js, ExperimentKind enum).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# MLflow 3.17's UI also has a global GenAI / Model training switch (remembered in the browser, GenAI by
# default) that wins over the tag; the `workflowType` query parameter of a link selects the view it opens.
ML_VIEW = "?workflowType=machine_learning"
HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0


@dataclasses.dataclass
class Dashboard:
    """One started dashboard process."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_sweep_dir(path: str | os.PathLike[str]) -> Path:
    """The sweep folder: `path` itself when it holds sweep.yaml, else its only sweep sub-folder."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"'{path}' is not a folder; give a sweep folder (holding sweep.yaml) or a workspace.")
    if (folder / sweep_files.SWEEP_FILE).is_file():
        return folder
    sweeps = sorted(p for p in folder.iterdir() if (p / sweep_files.SWEEP_FILE).is_file())
    if len(sweeps) == 1:
        return sweeps[0]
    if not sweeps:
        raise UserError(f"'{folder}' holds no sweep (no {sweep_files.SWEEP_FILE} in it or in its sub-folders).")
    raise UserError(f"workspace '{folder}' holds {len(sweeps)} sweeps ({', '.join(p.name for p in sweeps)}); "
                    "name one: hpo ui WORKSPACE/SWEEP.")


def optuna_storage(sweep_dir: Path, config: dict[str, Any]) -> str | None:
    """The sweep's Optuna storage URL (None for Ray-backed sweeps)."""
    if (config.get("backend") or "ray") != "optuna":
        return None
    from hpo.backends.optuna_factory import storage_url
    from hpo.driver.workspace import SweepWorkspace

    return storage_url(config.get("storage"), SweepWorkspace(sweep_dir).state_dir)


def _start(name: str, command: list[str], url: str, ready: str, log_dir: Path, env: dict[str, str]) -> Dashboard:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    dashboard = Dashboard(name, process, url, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"{name} exited with code {process.returncode} before answering:\n{dashboard.tail()}")
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:
                if response.status == 200:
                    return dashboard
        except OSError:
            time.sleep(0.3)
    stop(dashboard)
    raise UserError(f"{name} did not answer {ready} within {START_TIMEOUT_S:.0f} s:\n{dashboard.tail()}")


def stop(dashboard: Dashboard) -> None:
    """Stop the dashboard's whole process group (servers fork workers), politely first."""
    if dashboard.process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(dashboard.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            dashboard.process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _mark_experiment(settings: TrackingSettings) -> tuple[str | None, str | None]:
    """(experiment id, parent run id) of the sweep; sets the experiment kind on experiments logged before it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return None, None
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`hpo.run_kind` = 'sweep'",
                                 max_results=1)
    return experiment.experiment_id, parents[0].info.run_id if parents else None


def start_dashboards(sweep_dir: Path, *, mlflow_port: int | None = None, optuna_port: int | None = None,
                     optuna: bool = True, log_dir: Path | None = None) -> tuple[list[Dashboard], list[str]]:
    """Start the dashboards of `sweep_dir`; returns them and the lines to print (URLs)."""
    config = sweep_files.load_config(sweep_dir)
    settings = TrackingSettings.for_sweep(sweep_dir, config)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="hpo-ui-"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    dashboards: list[Dashboard] = []
    lines: list[str] = []
    try:
        if not settings.enabled:
            lines.append("MLflow: tracking is disabled for this sweep (tracking.enabled: false)")
        else:
            experiment_id, parent_id = _mark_experiment(settings)
            if settings.is_server:
                base = settings.tracking_uri.rstrip("/")
            else:
                port = mlflow_port or free_port()
                base = f"http://{HOST}:{port}"
                dashboards.append(_start("mlflow", [str(bin_dir / "mlflow"), "server", "--backend-store-uri",
                                                    settings.tracking_uri, "--host", HOST, "--port", str(port),
                                                    "--workers", "1"], base, f"{base}/health", log_dir, env))
            lines.append(f"MLflow UI:        {base}/#/experiments/{experiment_id}{ML_VIEW}" if experiment_id else
                         f"MLflow UI:        {base} (experiment '{settings.experiment_name}' not logged yet)")
            if experiment_id and parent_id:
                lines.append(f"  sweep run:      {base}/#/experiments/{experiment_id}/runs/{parent_id}{ML_VIEW}")
            lines.append(f"  registered:     {base}/#/models/{settings.registered_model_name}")
        storage = optuna_storage(sweep_dir, config) if optuna else None
        if storage:
            port = optuna_port or free_port()
            base = f"http://{HOST}:{port}"
            dashboards.append(_start("optuna-dashboard", [str(bin_dir / "optuna-dashboard"), storage, "--host", HOST,
                                                          "--port", str(port)], base, f"{base}/", log_dir, env))
            lines.append(f"Optuna dashboard: {base}/")
    except BaseException:
        for dashboard in dashboards:
            stop(dashboard)
        raise
    return dashboards, lines


def serve_until_interrupted(dashboards: list[Dashboard], *, echo: Callable[[str], None] = print) -> int:
    """Wait until Ctrl-C/SIGTERM (exit 0) or until a dashboard dies (exit 1); stop them all either way."""
    stopping: dict[str, int | None] = {"signal": None}

    def on_signal(number: int, _frame: Any) -> None:
        stopping["signal"] = number

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while stopping["signal"] is None:
            dead = [d for d in dashboards if d.process.poll() is not None]
            if dead:
                echo(f"{dead[0].name} stopped on its own (code {dead[0].process.returncode}):\n{dead[0].tail()}")
                code = 1
                break
            time.sleep(0.5)
    finally:
        for dashboard in dashboards:
            stop(dashboard)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping["signal"] is not None:
        echo("dashboards stopped")
    return code


def _handle(args: argparse.Namespace) -> int:
    sweep_dir = find_sweep_dir(args.workspace)
    dashboards, lines = start_dashboards(sweep_dir, mlflow_port=args.mlflow_port, optuna_port=args.optuna_port,
                                         optuna=not args.no_optuna)
    print(f"sweep {sweep_dir.name} ({sweep_dir})")
    for line in lines:
        print(line)
    if not dashboards:
        return 0
    print("Ctrl-C stops the dashboards.", flush=True)
    return serve_until_interrupted(dashboards)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ui", help="serve the sweep's MLflow UI (and Optuna dashboard) on 127.0.0.1")
    parser.add_argument("workspace", metavar="WORKSPACE", help="a sweep folder (or a workspace holding one sweep)")
    parser.add_argument("--mlflow-port", type=int, default=None, help="port of the MLflow UI (default: a free one)")
    parser.add_argument("--optuna-port", type=int, default=None, help="port of optuna-dashboard (default: a free one)")
    parser.add_argument("--no-optuna", action="store_true", help="do not start optuna-dashboard")
    parser.set_defaults(func=_handle)

"""`hpo ui SWEEP`: the MLflow UI and optuna-dashboard of a finished Optuna sweep on 127.0.0.1, opened in
headless Chromium (Debian's package, started here): the sweep's parent run lists its child runs, its page
links the champion's registered model, a plot artifact renders, Ctrl-C stops everything.

The screenshots are kept in $HPO_TEST_ARTIFACTS (default: <repo>/test-artifacts/hpo-ui/).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.engine.fixture_skill import make_fixture_skill
from tests.tracking.headless_chromium import HeadlessChromium

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("HPO_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "hpo-ui"
EXPANDER = "button[data-component-id*=\"runnamecellrenderer\"]"


def _finished_sweep(tmp_path: Path) -> Path:
    skill = make_fixture_skill(tmp_path / "skill")
    done = subprocess.run([sys.executable, "-m", "hpo.cli", "train", "--skill-dir", str(skill), "--backend", "optuna",
                           "--algorithm", "random", "--max-trials", "3", "--yes", "train.num_epochs=3",
                           "fixture.sleep_s=0.01"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CI": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    (sweep_dir,) = list((tmp_path / "hpo_workspace").iterdir())
    return sweep_dir


def _start_ui(sweep_dir: Path, log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-u", "-m", "hpo.cli", "ui", str(sweep_dir)], stdout=handle,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text()
        if "Ctrl-C stops the dashboards." in text:
            urls = {"mlflow": re.search(r"MLflow UI:\s+(\S+)", text).group(1),
                    "run": re.search(r"sweep run:\s+(\S+)", text).group(1),
                    "optuna": re.search(r"Optuna dashboard:\s+(\S+)", text).group(1)}
            return process, urls
        if process.poll() is not None:
            raise AssertionError(f"hpo ui exited with {process.returncode}:\n{text}")
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"hpo ui printed no URLs within 300 s:\n{log.read_text()}")


@pytest.mark.slow
def test_hpo_ui_serves_the_sweep_in_mlflow_and_optuna_dashboards(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from hpo.tracking.dashboards import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

    sweep_dir = _finished_sweep(tmp_path)
    best = json.loads((sweep_dir / "best" / "best.json").read_text())["mlflow"]
    # The sweep itself (not `hpo ui`, which only marks sweeps logged before) marks its experiment as model
    # training, so MLflow's UI opens it on the runs table rather than the GenAI view.
    experiment = MlflowClient(best["tracking_uri"]).get_experiment_by_name(best["experiment"])
    assert experiment.tags.get(EXPERIMENT_KIND_TAG) == MODEL_TRAINING_KIND
    process, urls = _start_ui(sweep_dir, tmp_path / "ui.log")
    try:
        for url in urls.values():
            assert url.startswith("http://127.0.0.1:")
        assert "workflowType=machine_learning" in urls["mlflow"]  # opens on the runs table, not the GenAI view
        optuna_base = urls["optuna"].rstrip("/")
        with urllib.request.urlopen(f"{optuna_base}/api/studies", timeout=30) as response:
            studies = json.loads(response.read())["study_summaries"]
        assert len(studies) == 1 and studies[0]["study_name"]

        browser = HeadlessChromium()
        try:
            browser.navigate(urls["mlflow"])
            browser.wait_for(f"document.body.innerText.includes('{sweep_dir.name}')", what="the parent run")
            browser.wait_for(f"!!document.querySelector('{EXPANDER}')", what="the parent's child-run expander")
            browser.evaluate(f"document.querySelector('{EXPANDER}').click()")
            children = ["trial-0000", "trial-0001", "trial-0002"]
            browser.wait_for(f"{json.dumps(children)}.every(n => document.body.innerText.includes(n))",
                             what="the child runs under the parent")
            browser.screenshot(ARTIFACTS / "runs_table.png")

            # The parent run's page links the champion's registered model version.
            run_url = urls["run"]
            browser.navigate(run_url)
            version = f"{best['registered_model']} version {best['model_version']}"
            browser.wait_for(f"document.body.innerText.includes('Champion:') && "
                             f"!!document.querySelector('a[href*=\"/models/{best['registered_model']}/versions/"
                             f"{best['model_version']}\"]') && document.body.innerText.includes('{version}')",
                             what="the champion's registered model on the parent run")
            browser.evaluate(f"document.querySelector('a[href*=\"/models/{best['registered_model']}/versions/\"]')"
                             ".scrollIntoView({block: 'center'})")
            browser.screenshot(ARTIFACTS / "parent_run.png")

            plot_url = run_url.replace("?", "/artifacts/plots/optimization_history.png?", 1) if "?" in run_url \
                else f"{run_url}/artifacts/plots/optimization_history.png"
            browser.navigate(plot_url)
            width = browser.wait_for(
                "Math.max(0, ...Array.from(document.images).filter(i => i.complete && !i.src.startsWith('data:'))"
                ".map(i => i.naturalWidth))", what="the optimization-history plot", timeout_s=120)
            assert width > 200
            screenshot = browser.screenshot(ARTIFACTS / "plot_artifact.png")
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert code == 0 and "dashboards stopped" in (tmp_path / "ui.log").read_text()
    for url in (urls["mlflow"], urls["optuna"]):
        with pytest.raises(OSError):
            urllib.request.urlopen(url.split("#")[0], timeout=5)


def test_hpo_ui_names_the_sweep_to_open(tmp_path: Path) -> None:
    from hpo.tracking.dashboards import find_sweep_dir
    from skillkit.errors import UserError

    for name in ("a", "b"):
        (tmp_path / "ws" / name).mkdir(parents=True)
        (tmp_path / "ws" / name / "sweep.yaml").write_text("name: x\n")
    assert find_sweep_dir(tmp_path / "ws" / "a") == (tmp_path / "ws" / "a").resolve()
    with pytest.raises(UserError, match=r"holds 2 sweeps \(a, b\); name one"):
        find_sweep_dir(tmp_path / "ws")
    with pytest.raises(UserError, match="holds no sweep"):
        find_sweep_dir(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        find_sweep_dir(tmp_path / "missing")

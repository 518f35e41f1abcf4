"""The champion of a real (tiny) sweep logged to a real `mlflow server`: `mlflow.pyfunc.load_model(
"models:/mask2former@champion")` predicts an image, `mlflow models serve` answers a REST request on loopback,
and both return what `mask2former inference -e best/inference_spec.yaml` writes for the same image."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.tracking.synthetic_sweep import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


def _sweep_config(tmp_path: Path, tracking_uri: str) -> Path:
    from mask2former.data.synth import write_synthetic_splits
    from mask2former.model.tiny import tiny_spec_overrides

    data = tmp_path / "data"
    write_synthetic_splits(data, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=SIZE)
    overrides = dict(tiny_spec_overrides(num_classes=8))
    overrides.update({
        "model.mask_former.train_num_points": 256, "dataset.label_map": str(data / "train" / "label_map_panoptic.json"),
        "dataset.augmentation.train_min_size": [SIZE], "dataset.augmentation.train_max_size": SIZE,
        "dataset.augmentation.train_crop_size": [SIZE, SIZE], "dataset.augmentation.test_min_size": SIZE,
        "dataset.augmentation.test_max_size": SIZE, "dataset.pin_memory": False, "wandb.enable": False,
        "train.iters_per_epoch": 2, "train.seed": 7, "model.object_mask_threshold": 0.0,
    })
    for split in ("train", "val"):
        root = data / split
        overrides.update({
            f"dataset.{split}.type": "coco_panoptic",
            f"dataset.{split}.panoptic_json": str(root / "annotations_panoptic.json"),
            f"dataset.{split}.img_dir": str(root / "images.tar.gz"),
            f"dataset.{split}.panoptic_dir": str(root / "images_panoptic.tar.gz"),
            f"dataset.{split}.batch_size": 2, f"dataset.{split}.num_workers": 0,
        })
    sweep = {
        "name": "pyfunc", "skill_dir": str(REPO_ROOT), "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 1, "max_epochs": 1}, "metric": "kpi",
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1}, "spec_overrides": overrides,
        "search_space": {"parameters": ["train.optim.lr"]}, "seed": 3, "baseline": {"enabled": False},
        "tracking": {"tracking_uri": tracking_uri},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def _one_val_image(tmp_path: Path) -> Path:
    folder = tmp_path / "one_image"
    with tarfile.open(tmp_path / "data" / "val" / "images.tar.gz") as archive:
        member = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)[0]
        archive.extractall(tmp_path / "val_images", members=[member], filter="data")
    source = tmp_path / "val_images" / member.name
    folder.mkdir()
    target = folder / source.name
    target.write_bytes(source.read_bytes())
    return target


def _cli_outputs(best_dir: Path, image: Path, out: Path) -> dict:
    """What `mask2former inference -e best/inference_spec.yaml` writes for `image`."""
    command = [str(Path(sys.executable).parent / "mask2former"), "inference", "-e", str(best_dir / "inference_spec.yaml"),
               f"dataset.test.img_dir={image.parent}", f"inference.results_dir={out}", "inference.batch_size=1",
               "dataset.test.panoptic_json=", "dataset.test.instance_json="]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    stem = image.stem
    semantic = np.asarray(Image.open(out / "semantic" / f"{stem}.png")).astype(np.int64)
    rgb = np.asarray(Image.open(out / "panoptic" / f"{stem}.png")).astype(np.int64)
    panoptic = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    (annotation,) = json.loads((out / "panoptic.json").read_text())["annotations"]
    return {"semantic": semantic, "panoptic": panoptic, "segments_info": annotation["segments_info"]}


def _assert_same(record: dict, expected: dict, image: Path) -> None:
    assert record["file_name"] == image.name
    assert np.array_equal(np.asarray(record["semantic"]), expected["semantic"])
    assert np.array_equal(np.asarray(record["panoptic"]), expected["panoptic"])
    got = sorted(record["segments_info"], key=lambda s: s["id"])
    want = sorted(expected["segments_info"], key=lambda s: s["id"])
    assert [(s["id"], s["category_id"], s["area"]) for s in got] == [(s["id"], s["category_id"], s["area"]) for s in want]
    assert [s["score"] for s in got] == pytest.approx([s["score"] for s in want], abs=1e-6)


def _serve(model_uri: str, tracking_uri: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow models serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    _stop(process)
    raise AssertionError(f"mlflow models serve did not answer /ping within 240 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_champion_loads_predicts_and_serves_like_the_inference_command(tmp_path: Path, mlflow_server,
                                                                          monkeypatch) -> None:
    import mlflow
    import pandas as pd

    from hpo.driver.runner import run_sweep

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    run_sweep(_sweep_config(tmp_path, mlflow_server.uri))
    best_dir = tmp_path / "ws" / "pyfunc" / "best"
    best = json.loads((best_dir / "best.json").read_text())
    assert best["mlflow"]["model_error"] is None and best["mlflow"]["logged_model_id"], best["mlflow"]

    client = mlflow.MlflowClient(mlflow_server.uri)
    version = client.get_model_version_by_alias("mask2former", "champion")
    model_id = best["mlflow"]["logged_model_id"]
    assert version.source == f"models:/{model_id}"
    logged = client.get_logged_model(model_id)
    listed = [(v["name"], str(v["version"])) for v in json.loads(logged.tags["mlflow.modelVersions"])]
    assert listed == [("mask2former", str(version.version))]
    parent = client.get_run(best["mlflow"]["parent_run_id"])
    assert model_id in [o.model_id for o in parent.outputs.model_outputs]  # the parent run links it
    assert logged.source_run_id == best["mlflow"]["run_id"]
    assert f"#/models/mask2former/versions/{version.version}" in parent.data.tags["mlflow.note.content"]

    image = _one_val_image(tmp_path)
    expected = _cli_outputs(best_dir, image, tmp_path / "cli")

    model = mlflow.pyfunc.load_model("models:/mask2former@champion")
    assert model.metadata.get_input_schema().input_names() == ["image", "file_name"]
    assert model.metadata.load_input_example() is not None
    (record,) = model.predict(pd.DataFrame({"image": [image.read_bytes()], "file_name": [image.name]}))
    _assert_same(record, expected, image)

    process, url = _serve("models:/mask2former@champion", mlflow_server.uri, tmp_path / "serve.log")
    try:
        body = json.dumps({"dataframe_split": {"columns": ["image", "file_name"],
                                               "data": [[base64.b64encode(image.read_bytes()).decode(), image.name]]}})
        request = urllib.request.Request(f"{url}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            (served,) = json.loads(response.read())["predictions"]
    finally:
        _stop(process)
    _assert_same(served, expected, image)

"""`mask2former train|evaluate|inference -e spec.yaml [overrides]`: a real SIGTERM stop, the evaluate and
inference outputs, and the CLI's error paths (message and exit code)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.cli import main
from skillkit.status.writer import read_status
from tests.training.training_support import write_spec_file

MASK2FORMER = [sys.executable, "-m", "mask2former.cli"]


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early with {proc.returncode}:\n{proc.stdout.read()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out waiting for the trainer")


def test_sigterm_stops_cleanly_with_checkpoint_and_status(panoptic_data, tmp_path):
    results = tmp_path / "run"
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, results)
    proc = subprocess.Popen(
        MASK2FORMER + ["train", "-e", str(spec), "train.num_epochs=100", "train.iters_per_epoch=1",
                       "train.validation_interval=50", "train.checkpoint_interval=50"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # Wait until at least one epoch is done, so training is under way when the signal lands.
        _wait_for(lambda: any(r["status"] == "RUNNING" for r in read_status(results)), 300, proc)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    last = read_status(results)[-1]
    assert last["status"] == "SUCCESS" and "SIGTERM" in last["message"]
    checkpoints = sorted(results.glob("model_epoch_*_step_*.pth"))
    assert checkpoints, "no checkpoint written on SIGTERM"
    name = checkpoints[-1].name
    assert name == f"model_epoch_{last['epoch']:03d}_step_{last['step']:05d}.pth"
    assert os.readlink(results / "mask2former_model_latest.pth") == name
    assert 1 <= last["epoch"] < 100


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_evaluate_writes_metrics_and_status(panoptic_data, trained_run, tmp_path, capsys):
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "eval")
    code, output = _cli(["evaluate", "-e", str(spec),
                         f"evaluate.checkpoint={trained_run / 'mask2former_model_latest.pth'}"], capsys)
    assert code == 0, output
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["split"] == "test" and report["num_images"] == 2 and report["mode"] == "panoptic"
    assert {"mIoU", "pixel_acc", "PQ", "val_loss"} <= set(report["metrics"])
    assert "mIoU" in output  # the table
    last = read_status(tmp_path / "eval")[-1]
    assert last["status"] == "SUCCESS" and last["kpi"]["mIoU"] == pytest.approx(report["metrics"]["mIoU"])
    # The shared run validated the same images with the same weights: evaluate reproduces its numbers.
    trained_last = [r for r in read_status(trained_run) if r["status"] == "RUNNING"][-1]
    assert report["metrics"]["mIoU"] == pytest.approx(trained_last["kpi"]["mIoU"], abs=1e-6)


def test_inference_writes_maps_json_and_overlays(panoptic_data, trained_run, tmp_path, capsys):
    images = tmp_path / "images" / "sub"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (70, 50, 3), dtype=np.uint8)).save(tmp_path / "images" / "b.jpg")
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out",
                           **{"dataset.test.img_dir": str(tmp_path / "images")})
    checkpoint = trained_run / "mask2former_model_latest.pth"
    code, output = _cli(["inference", "-e", str(spec), f"inference.checkpoint={checkpoint}",
                         "model.object_mask_threshold=0.0"], capsys)
    assert code == 0, output
    out = tmp_path / "out"
    semantic = np.asarray(Image.open(out / "semantic" / "sub" / "a.png"))
    assert semantic.shape == (48, 80)  # original size
    label_ids = {c["id"] for c in json.loads((panoptic_data / "train" / "label_map_panoptic.json").read_text())}
    assert set(np.unique(semantic).tolist()) <= label_ids
    assert np.asarray(Image.open(out / "panoptic" / "b.png")).shape == (70, 50, 3)
    with Image.open(out / "overlays" / "sub" / "a.jpg") as overlay:
        assert overlay.size == (80, 48)
    panoptic = json.loads((out / "panoptic.json").read_text())
    # The spec's test annotations (ids 1, 2) do not name these images: fresh COCO ids above them, in path
    # order, with the file names kept beside them.
    assert [(a["image_id"], a["file_name"]) for a in panoptic["annotations"]] == [(3, "b.png"), (4, "sub/a.png")]
    assert panoptic["images"] == [{"id": 3, "file_name": "b.jpg", "height": 70, "width": 50},
                                  {"id": 4, "file_name": "sub/a.png", "height": 48, "width": 80}]
    for annotation in panoptic["annotations"]:
        ids = np.asarray(Image.open(out / "panoptic" / annotation["file_name"])).astype(np.int64)
        ids = ids[..., 0] + 256 * ids[..., 1] + 65536 * ids[..., 2]
        assert {s["id"] for s in annotation["segments_info"]} == set(np.unique(ids).tolist()) - {0}
        assert all(s["category_id"] in label_ids for s in annotation["segments_info"])
    summary = json.loads((out / "inference.json").read_text())
    assert summary["num_images"] == 2 and summary["mode"] == "panoptic"

    # Instance mode from the same checkpoint: COCO results with RLE strings (top-k = every query x class pair,
    # so both images hold thing detections whatever this barely trained model prefers).
    code, output = _cli(["inference", "-e", str(spec), f"inference.checkpoint={checkpoint}", "model.mode=instance",
                         "model.test_topk_per_image=80", f"results_dir={tmp_path / 'inst'}"], capsys)
    assert code == 0, output
    records = json.loads((tmp_path / "inst" / "instances.json").read_text())
    assert records and all(isinstance(r["segmentation"]["counts"], str) for r in records)
    assert {(r["image_id"], r["file_name"]) for r in records} == {(3, "b.jpg"), (4, "sub/a.png")}
    assert all(r["category_id"] in {1, 2, 3} for r in records)  # thing categories only


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["train", "-e", "{missing}"], 3, "missing.yaml"),
        (["train", "-e", "{spec}", "train.optim.lr_scheduler=Cosine"], 3, "lr_scheduler"),
        (["train", "-e", "{spec}", "train.no_such_key=1"], 3, "no_such_key"),
        (["evaluate", "-e", "{spec}"], 3, "evaluate.checkpoint"),
        (["evaluate", "-e", "{spec}", "evaluate.checkpoint={tmp}/none.pth"], 6, "none.pth"),
        # With trt_engine set the command hands over to the deploy side, which names the missing graph.
        (["evaluate", "-e", "{spec}", "evaluate.checkpoint={tmp}/x.pth", "evaluate.trt_engine={tmp}/m.onnx"], None,
         "m.onnx"),
        (["train", "-e", "{spec}", "dataset.train.panoptic_json={tmp}/gone.json"], 6, "gone.json"),
    ],
)
def test_cli_errors_exit_with_the_error_code_and_name_the_problem(panoptic_data, tmp_path, capsys, argv, code,
                                                                  message):
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out")
    values = {"spec": spec, "missing": tmp_path / "missing.yaml", "tmp": tmp_path}
    got, output = _cli([part.format(**values) for part in argv], capsys)
    assert got == code if code is not None else got != 0, output
    assert output.startswith("error: ") and message in output
    assert "Traceback" not in output


def test_train_data_error_is_recorded_as_failure_line(panoptic_data, tmp_path, capsys):
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out")
    got, output = _cli(["train", "-e", str(spec), f"dataset.val.img_dir={tmp_path}/nowhere"], capsys)
    assert got == 6, output
    last = read_status(tmp_path / "out")[-1]
    assert last["status"] == "FAILURE" and last["error_class"] == "data" and "nowhere" in last["message"]


def test_checkpoint_without_spec_is_a_data_error(panoptic_data, tmp_path, capsys):
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "plain.pth")
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out")
    got, output = _cli(["evaluate", "-e", str(spec), f"evaluate.checkpoint={tmp_path / 'plain.pth'}"], capsys)
    assert got == 6 and "carries no experiment spec" in output

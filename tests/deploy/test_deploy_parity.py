"""Deploy-side evaluate / inference on the exported ONNX file (ONNX Runtime) equal the PyTorch actions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.config import config_from_dict
from mask2former.deploy.backends import OnnxRuntimeBackend, TorchBackend
from mask2former.training.checkpoint_io import load_model_from_checkpoint
from skillkit.spec import load_spec
from skillkit.status.writer import read_status
from tests.deploy.deploy_fixtures import SMALL_SIZE, exported, synthetic_data, tiny_spec, with_data, write_spec

MODES = ["semantic", "instance", "panoptic"]
METRIC_TOLERANCE = 1e-3


def _spec(tmp: Path, mode: str, action: str, **section) -> tuple:
    data = synthetic_data()
    spec = with_data(tiny_spec(mode=mode), train=data["train"], val=data["val"], size=SMALL_SIZE)
    # Low thresholds so the untrained model's panoptic / instance predictions are not empty.
    spec["model"]["object_mask_threshold"] = 0.0
    spec["model"]["overlap_threshold"] = 0.3
    spec["results_dir"] = str(tmp / f"{action}-{'engine' if section.get('trt_engine') else 'torch'}")
    spec[action].update(section)
    if "checkpoint" not in section:
        spec[action]["checkpoint"] = ""
    path = write_spec(tmp / f"{action}-{len(list(tmp.iterdir()))}.yaml", spec)
    loaded = load_spec(path, action=action)
    return config_from_dict(loaded), loaded


@pytest.mark.parametrize("mode", MODES)
def test_onnx_backend_predicts_what_pytorch_predicts(mode: str) -> None:
    result = exported(mode)
    model, _ = load_model_from_checkpoint(result.checkpoint)
    images = torch.rand(3, 3, SMALL_SIZE, SMALL_SIZE, generator=torch.Generator().manual_seed(3))
    with OnnxRuntimeBackend(result.onnx_file) as onnx_backend:
        assert onnx_backend.input_size == (SMALL_SIZE, SMALL_SIZE) and onnx_backend.mode == mode
        got = onnx_backend.predict(images)
        tao = onnx_backend.outputs(images)
    want = TorchBackend(model).predict(images)
    for key in ("pred_logits", "pred_masks"):
        assert got[key].shape == want[key].shape and got[key].dtype == torch.float32
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)
    torch_tao = TorchBackend(model, mode=mode, output_size=(SMALL_SIZE, SMALL_SIZE)).outputs(images)
    assert set(tao) == set(torch_tao)
    for name in tao:
        if tao[name].dtype.is_floating_point and not (mode == "instance" and name == "pred_masks"):
            torch.testing.assert_close(tao[name], torch_tao[name], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_deploy_evaluate_on_onnx_equals_pytorch_evaluate(mode: str, tmp_path: Path) -> None:
    from mask2former.actions.deploy_evaluate import run_deploy_evaluation
    from mask2former.actions.evaluate import run_evaluation

    result = exported(mode)
    cfg, spec = _spec(tmp_path, mode, "evaluate", checkpoint=str(result.checkpoint))
    torch_report = run_evaluation(cfg, spec)
    cfg, spec = _spec(tmp_path, mode, "evaluate", trt_engine=str(result.onnx_file))
    onnx_report = run_deploy_evaluation(cfg, spec)

    assert onnx_report["backend"] == "onnxruntime" and onnx_report["num_images"] == torch_report["num_images"] == 4
    native = {"semantic": "mIoU", "instance": "AP", "panoptic": "PQ"}[mode]
    assert native in onnx_report["metrics"]
    for name, value in torch_report["metrics"].items():
        if name == "val_loss":  # the criterion samples points at random: equal in distribution only
            assert onnx_report["metrics"]["val_loss"] == pytest.approx(value, rel=0.2)
            continue
        assert onnx_report["metrics"][name] == pytest.approx(value, abs=METRIC_TOLERANCE), name
    if mode != "instance":  # untrained, but not empty; instance GT has thing pixels only, which it misses
        assert torch_report["metrics"]["pixel_acc"] > 0  # (metric parity on a trained model: the slow hand-off test)
    saved = json.loads((Path(cfg.results_dir) / "evaluation.json").read_text())
    assert saved["metrics"] == pytest.approx(onnx_report["metrics"])
    lines = read_status(cfg.results_dir)
    assert lines[0]["status"] == "STARTED" and lines[-1]["status"] == "SUCCESS"
    assert lines[-1]["kpi"]["mIoU"] == pytest.approx(onnx_report["metrics"]["mIoU"])


def test_deploy_inference_on_onnx_writes_the_pytorch_files(tmp_path: Path) -> None:
    from mask2former.actions.deploy_inference import run_deploy_inference
    from mask2former.actions.inference import run_inference

    result = exported("panoptic")
    cfg, spec = _spec(tmp_path, "panoptic", "inference", checkpoint=str(result.checkpoint))
    run_inference(cfg, spec)
    torch_dir = Path(cfg.results_dir)
    cfg, spec = _spec(tmp_path, "panoptic", "inference", trt_engine=str(result.onnx_file))
    summary = run_deploy_inference(cfg, spec)
    onnx_dir = Path(cfg.results_dir)

    assert summary["backend"] == "onnxruntime" and summary["num_images"] == 4
    for folder in ("semantic", "panoptic", "overlays"):
        names = sorted(p.name for p in (torch_dir / folder).iterdir())
        assert names and names == sorted(p.name for p in (onnx_dir / folder).iterdir())
    for png in (torch_dir / "semantic").iterdir():
        want, got = np.array(Image.open(png)), np.array(Image.open(onnx_dir / "semantic" / png.name))
        assert (want != got).mean() <= 1e-3  # argmax ties may flip a pixel, nothing more
    want = json.loads((torch_dir / "panoptic.json").read_text())["annotations"]
    got = json.loads((onnx_dir / "panoptic.json").read_text())["annotations"]
    assert [[s["category_id"] for s in a["segments_info"]] for a in got] == \
           [[s["category_id"] for s in a["segments_info"]] for a in want]
    assert sum(len(a["segments_info"]) for a in want) > 0

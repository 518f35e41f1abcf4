"""TensorRT on a GPU machine: FP32/FP16 engines with a batch profile and a timing cache, run through the
deploy backends, evaluated against PyTorch. Skipped cleanly without the `tensorrt` package or a GPU."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch

from tests.deploy.deploy_fixtures import SMALL_SIZE, exported, synthetic_data, tiny_spec, with_data, write_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="the tensorrt package is not installed"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _build(tmp_path: Path, precision: str, *, layers=()) -> tuple[Path, dict]:
    from mask2former.deploy.trt_engine import EngineSettings, build_engine

    settings = EngineSettings(data_type=precision, workspace_mib=1024, min_batch=1, opt_batch=2, max_batch=4,
                              layers_precision=tuple(layers))
    engine = tmp_path / f"model_{precision}.engine"
    info = build_engine(exported("panoptic").onnx_file, engine, settings, timing_cache=tmp_path / "timing.cache")
    return engine, info


def test_engines_match_pytorch_and_reuse_the_timing_cache(tmp_path: Path) -> None:
    from mask2former.deploy.backends import TensorRTBackend, TorchBackend
    from mask2former.training.checkpoint_io import load_model_from_checkpoint

    engine32, info32 = _build(tmp_path, "FP32")
    assert not info32["timing_cache_reused"] and (tmp_path / "timing.cache").stat().st_size > 0
    engine16, info16 = _build(tmp_path, "FP16")
    assert info16["timing_cache_reused"] and info16["profile"] == [1, 2, 4]
    sidecar = json.loads((tmp_path / "model_FP16.engine.json").read_text())
    assert sidecar["mode"] == "panoptic" and sidecar["data_type"] == "FP16"

    model, _ = load_model_from_checkpoint(exported("panoptic").checkpoint)
    images = torch.rand(5, 3, SMALL_SIZE, SMALL_SIZE, generator=torch.Generator().manual_seed(0))
    want = TorchBackend(model, device="cuda").predict(images)
    for engine, tolerance in ((engine32, 1e-3), (engine16, 5e-2)):
        with TensorRTBackend(engine) as backend:
            assert backend.batch_range == (1, 4) and backend.input_size == (SMALL_SIZE, SMALL_SIZE)
            got = backend.predict(images)  # 5 images: chunks of 4 + 1
            probs_got, probs_want = got["pred_logits"].softmax(-1), want["pred_logits"].softmax(-1)
            assert (probs_got - probs_want).abs().max() < tolerance
            assert (got["pred_masks"].sigmoid() - want["pred_masks"].sigmoid()).abs().max() < tolerance * 2


def test_layer_precisions_are_applied(tmp_path: Path) -> None:
    _, info = _build(tmp_path, "FP16", layers=[("/model/backbone/*", "fp32")])
    assert info["layers_precision"] and all(name.startswith("/model/backbone/") for name in info["layers_precision"])


def test_deploy_evaluate_on_an_fp16_engine_matches_pytorch(tmp_path: Path) -> None:
    from mask2former.actions.deploy_evaluate import run_deploy_evaluation
    from mask2former.actions.evaluate import run_evaluation
    from mask2former.config import config_from_dict
    from mask2former.deploy.backends import TensorRTBackend
    from skillkit.spec import load_spec

    engine, _ = _build(tmp_path, "FP16")
    data = synthetic_data()

    def spec(**evaluate):
        base = with_data(tiny_spec(mode="panoptic"), train=data["train"], val=data["val"], size=SMALL_SIZE)
        base["results_dir"] = str(tmp_path / ("engine" if evaluate.get("trt_engine") else "torch"))
        base["evaluate"].update({"checkpoint": "", **evaluate})
        loaded = load_spec(write_spec(tmp_path / f"{len(list(tmp_path.iterdir()))}.yaml", base), action="evaluate")
        return config_from_dict(loaded), loaded

    torch_report = run_evaluation(*spec(checkpoint=str(exported("panoptic").checkpoint)))
    engine_report = run_deploy_evaluation(*spec(trt_engine=str(engine)))
    assert engine_report["backend"] == "tensorrt"
    for name in ("mIoU", "pixel_acc", "PQ"):
        assert engine_report["metrics"][name] == pytest.approx(torch_report["metrics"][name], abs=0.02), name
    with TensorRTBackend(engine) as backend:
        images = torch.rand(1, 3, SMALL_SIZE, SMALL_SIZE)
        for _ in range(3):
            backend.outputs(images)
        started = time.perf_counter()
        for _ in range(20):
            backend.outputs(images)
        latency = (time.perf_counter() - started) / 20 * 1000
    print(f"FP16 engine: {latency:.2f} ms/image; mIoU {engine_report['metrics']['mIoU']:.4f} vs PyTorch "
          f"{torch_report['metrics']['mIoU']:.4f}")

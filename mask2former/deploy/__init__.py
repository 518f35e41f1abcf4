"""Deployment: inference backends (PyTorch, ONNX Runtime, TensorRT) behind one interface, the TensorRT engine
builder (`trt_engine.py`), and the deploy-side evaluate / inference runs on an engine or ONNX file.

Names are imported lazily so that `mask2former --help` does not load onnx / onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InferenceBackend": "mask2former.deploy.backends",
    "OnnxRuntimeBackend": "mask2former.deploy.backends",
    "TensorRTBackend": "mask2former.deploy.backends",
    "TorchBackend": "mask2former.deploy.backends",
    "open_backend": "mask2former.deploy.backends",
    "evaluate_backend": "mask2former.deploy.evaluate",
    "run_deploy_evaluation": "mask2former.deploy.evaluate",
    "run_deploy_inference": "mask2former.deploy.inference",
    "decode_tao_outputs": "mask2former.deploy.decode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mask2former.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

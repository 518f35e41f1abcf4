"""Deployment: inference backends (PyTorch, ONNX Runtime, TensorRT) behind one interface, the TensorRT engine
builder (`trt_engine.py`), the scoring of any backend with the PyTorch evaluation's code (`evaluate.py`) and
the decoding of TAO-named graph outputs (`decode.py`). The actions that run them (`evaluate` / `inference` with
a `trt_engine`, `gen_trt_engine`) live in `mask2former.actions`.

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
    "decode_tao_outputs": "mask2former.deploy.decode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mask2former.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

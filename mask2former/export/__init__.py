"""ONNX export: the exportable module (model + per-mode post-processing) and the exporter with its float32
and ONNX-Runtime-vs-PyTorch checks (the `mask2former export` action is `mask2former/actions/export.py`).

Names are imported lazily so that `mask2former --help` does not load onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "INPUT_NAME": "mask2former.export.heads",
    "OUTPUT_NAMES": "mask2former.export.heads",
    "ExportableMask2Former": "mask2former.export.heads",
    "output_names": "mask2former.export.heads",
    "output_shapes": "mask2former.export.heads",
    "DEFAULT_TOLERANCE": "mask2former.export.onnx_export",
    "ExportError": "mask2former.export.onnx_export",
    "ExportResult": "mask2former.export.onnx_export",
    "ExportSettings": "mask2former.export.onnx_export",
    "Verification": "mask2former.export.onnx_export",
    "VerificationError": "mask2former.export.onnx_export",
    "export_onnx": "mask2former.export.onnx_export",
    "verify_onnx": "mask2former.export.onnx_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mask2former.export' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

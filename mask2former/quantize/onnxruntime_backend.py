"""Static int8 PTQ of an exported ONNX graph with ONNX Runtime (`quantize.backend: onnxruntime`, CPU).

Steps: ORT's pre-processing (shape inference + graph optimisation), choice of the nodes to quantize,
calibration of activation ranges on `dataset.quant_calibration_dataset.images_dir` (at the graph's fixed
size, see `calibration.py`), then `quantize_static` in QDQ format: int8 activations and weights, weights
per output channel.

Nodes: by default every Conv / MatMul / Gemm of the network (`/model/...`) whose weight is a constant
(the convolutions and linear layers); attention products of two activations and the exported
post-processing stay float, which keeps the int8 error in the parts int8 handles well. `quantize.layers`
/ `skip_names` patterns match node names or op types (see `settings.py`).

`quantize.algorithm`: minmax / max -> CalibrationMethod.MinMax, entropy -> CalibrationMethod.Entropy.
`quantize.backend_kwargs` are passed to `onnxruntime.quantization.quantize_static` (e.g.
`{"per_channel": false}`; unknown names are refused). `quantize.device`: cpu, or cuda when ONNX Runtime
has its CUDA provider (the calibration sessions run there).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader

from mask2former.quantize.settings import QuantizeSettings, select
from skillkit.errors import SpecError

QUANTIZED_NAME = "mask2former_int8_onnxruntime.onnx"
DEFAULT_OP_TYPES = ("Conv", "MatMul", "Gemm")
NETWORK_PREFIX = "/model/"


def select_nodes(model: onnx.ModelProto, settings: QuantizeSettings) -> list[str]:
    """Names of the nodes to quantize (module docstring)."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    chosen = []
    for node in model.graph.node:
        in_network = node.name.startswith(NETWORK_PREFIX)
        has_weight = len(node.input) > 1 and node.input[1] in constants
        default = in_network and node.op_type in DEFAULT_OP_TYPES and has_weight
        weights, _ = select(node.name, node.op_type, settings, default=default)
        if weights and node.op_type in DEFAULT_OP_TYPES:
            chosen.append(node.name)
    return chosen


class _Reader(CalibrationDataReader):
    """onnxruntime's calibration reader over a list of image batches."""

    def __init__(self, batches: Iterable[torch.Tensor], input_name: str) -> None:
        self._batches = list(batches)
        self._input = input_name
        self._iter: Iterator[torch.Tensor] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self._input: batch.numpy().astype(np.float32, copy=False)}

    def rewind(self) -> None:
        self._iter = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


def quantize_onnx(onnx_in: str | os.PathLike[str], onnx_out: str | os.PathLike[str], settings: QuantizeSettings,
                  batches: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Quantize `onnx_in` into `onnx_out`; returns the record of what was done."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mask2former.export.graph_checks import read_metadata, write_metadata

    accepted = set(inspect.signature(quantize_static).parameters)
    reserved = {"model_input", "model_output", "calibration_data_reader", "nodes_to_quantize", "calibrate_method",
                "op_types_to_quantize", "calibration_providers"}
    unknown = sorted(set(settings.backend_kwargs) - (accepted - reserved))
    if unknown:
        raise SpecError(f"quantize.backend_kwargs {unknown} are not settable arguments of "
                        f"onnxruntime.quantization.quantize_static; allowed: {sorted(accepted - reserved)}.")
    method = CalibrationMethod.Entropy if settings.algorithm == "entropy" else CalibrationMethod.MinMax
    onnx_out = Path(onnx_out)
    onnx_out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(onnx_in), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        nodes = select_nodes(graph, settings)
        if not nodes:
            raise SpecError("quantize.layers / quantize.skip_names leave no Conv/MatMul/Gemm node to quantize.")
        op_types = sorted({n.op_type for n in graph.graph.node if n.name in set(nodes)})
        input_name = graph.graph.input[0].name
        reader = _Reader(batches, input_name)
        if not len(reader):
            raise SpecError("dataset.quant_calibration_dataset.images_dir yielded no calibration image.")
        options = {"per_channel": True, "quant_format": QuantFormat.QDQ, "activation_type": QuantType.QInt8,
                   "weight_type": QuantType.QInt8, "reduce_range": False}
        options.update(settings.backend_kwargs)
        quantize_static(str(prepared), str(onnx_out), reader, nodes_to_quantize=nodes, op_types_to_quantize=op_types,
                        calibrate_method=method, calibration_providers=calibration_providers(settings.device),
                        **options)
    record = {"backend": "onnxruntime", "format": "QDQ", "algorithm": settings.algorithm,
              "calibration_images": sum(int(b.shape[0]) for b in reader._batches), "quantized_nodes": len(nodes),
              "op_types": op_types, "options": {k: str(v) for k, v in options.items()}}
    metadata = dict(read_metadata(onnx_in) or {})
    metadata["quantization"] = record
    write_metadata(onnx_out, metadata)
    return record


def calibration_providers(device: str) -> list[str]:
    """ONNX Runtime providers for the calibration sessions of `quantize.device`."""
    import onnxruntime as ort

    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SpecError(f"quantize.device={device} but this onnxruntime has no CUDA provider; set "
                            "quantize.device=cpu (calibration on CPU) or install onnxruntime-gpu.")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]

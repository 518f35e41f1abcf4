"""NVIDIA ModelOpt backends (`quantize.backend: modelopt.onnx | modelopt.pytorch`), used when the
`nvidia-modelopt` package is importable; otherwise a UserError says how to install it and points to the
ONNX Runtime backend, which runs anywhere.

* modelopt.onnx, mode static_ptq: int8 Q/DQ of the exported ONNX graph with calibration images
  (`quantize.algorithm` minmax/max -> "max", entropy -> "entropy"); mode weight_only_ptq: ModelOpt's int4
  weight-only modes (`algorithm` awq_clip, awq_lite, awq_full, rtn_dq). `quantize.device` chooses the
  calibration execution provider (cpu, cuda[:N], trt). `skip_names` become `nodes_to_exclude`.
* modelopt.pytorch, mode static_ptq: ModelOpt's INT8 default config on the checkpoint, calibrated with a
  forward loop over the calibration images; saved with `modelopt.torch.opt.save` next to the spec.

`quantize.backend_kwargs` go to ModelOpt's entry points (names they do not take are refused). These
paths cannot run on machines without ModelOpt (the project's CI); they are kept to the documented
ModelOpt APIs and report errors in the same form as the other backends.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.quantize.settings import QuantizeSettings
from skillkit.errors import SpecError, UserError

ONNX_QUANTIZED_NAME = "mask2former_modelopt.onnx"
TORCH_QUANTIZED_NAME = "mask2former_modelopt.pth"
INT8_METHODS = {"minmax": "max", "max": "max", "entropy": "entropy"}
INT4_METHODS = ("awq_clip", "awq_lite", "awq_full", "rtn_dq")


def import_modelopt(backend: str):
    try:
        import modelopt
    except ImportError as error:
        raise UserError(
            f"quantize.backend={backend} needs NVIDIA ModelOpt, which is not installed. On a CUDA machine: "
            "`pip install -c constraints.txt 'nvidia-modelopt[onnx]'` (TensorRT Model Optimizer). Without it, use "
            "quantize.backend=onnxruntime (static int8 PTQ of the exported ONNX file, runs on CPU) or "
            "quantize.backend=torchao (weight-only int8 of the checkpoint).") from error
    return modelopt


def check_modelopt_settings(settings: QuantizeSettings) -> str:
    """The ModelOpt quantize mode for (mode, algorithm); SpecError for combinations ModelOpt lacks."""
    if settings.backend == "modelopt.pytorch":
        if settings.mode != "static_ptq" or settings.algorithm not in ("minmax", "max"):
            raise SpecError(f"quantize.backend=modelopt.pytorch supports mode static_ptq with algorithm minmax/max "
                            f"(ModelOpt's INT8 default config); got mode {settings.mode}, algorithm {settings.algorithm}.")
        return "int8"
    if settings.mode == "static_ptq":
        if settings.algorithm not in INT8_METHODS:
            raise SpecError(f"quantize.algorithm={settings.algorithm} with modelopt.onnx static_ptq; allowed: "
                            f"{', '.join(INT8_METHODS)}.")
        return "int8"
    if settings.algorithm not in INT4_METHODS:
        raise SpecError(f"quantize.algorithm={settings.algorithm} with modelopt.onnx weight_only_ptq (int4 weights); "
                        f"allowed: {', '.join(INT4_METHODS)}. For int8 use mode static_ptq.")
    return "int4"


def _filtered(function: Callable, wanted: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    accepted = set(inspect.signature(function).parameters)
    unknown = sorted(set(extra) - accepted)
    if unknown:
        raise SpecError(f"quantize.backend_kwargs {unknown} are not arguments of ModelOpt's {function.__name__}; "
                        f"allowed: {sorted(accepted)}.")
    return {**{k: v for k, v in wanted.items() if k in accepted}, **extra}


def _eps(device: str) -> list[str]:
    if device == "trt":
        return ["trt"]
    if device.startswith("cuda"):
        return [device if ":" in device else "cuda:0"]
    return ["cpu"]


def quantize_onnx(onnx_in: str | os.PathLike[str], onnx_out: str | os.PathLike[str], settings: QuantizeSettings,
                  batches: Iterable[torch.Tensor]) -> dict[str, Any]:
    import_modelopt(settings.backend)
    from modelopt.onnx.quantization import quantize

    mode = check_modelopt_settings(settings)
    data = np.concatenate([b.numpy().astype(np.float32) for b in batches], 0)
    method = INT8_METHODS.get(settings.algorithm, settings.algorithm)
    exclude = [fnmatch.translate(p) for p in settings.skip_names]
    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    kwargs = _filtered(quantize, {"quantize_mode": mode, "calibration_method": method, "calibration_data": data,
                                  "calibration_eps": _eps(settings.device), "nodes_to_exclude": exclude or None,
                                  "output_path": str(onnx_out)}, settings.backend_kwargs)
    quantize(onnx_path=str(onnx_in), **kwargs)
    return {"backend": "modelopt.onnx", "quantize_mode": mode, "calibration_method": method,
            "calibration_images": int(data.shape[0]), "calibration_eps": _eps(settings.device)}


def quantize_torch(model: torch.nn.Module, spec: dict[str, Any], settings: QuantizeSettings,
                   batches: Iterable[torch.Tensor], out_file: str | os.PathLike[str], device: torch.device) -> dict[str, Any]:
    import_modelopt(settings.backend)
    import modelopt.torch.opt as mto
    import modelopt.torch.quantization as mtq

    check_modelopt_settings(settings)
    calibration = list(batches)
    model = model.to(device).eval()

    def forward_loop(module: torch.nn.Module) -> None:
        with torch.no_grad():
            for images in calibration:
                module(images.to(device))

    config = dict(mtq.INT8_DEFAULT_CFG)
    kwargs = _filtered(mtq.quantize, {"config": config, "forward_loop": forward_loop}, settings.backend_kwargs)
    model = mtq.quantize(model, **kwargs)
    for pattern in settings.skip_names:
        mtq.disable_quantizer(model, lambda name, pattern=pattern: fnmatch.fnmatchcase(name, pattern))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    mto.save(model, str(out_file))
    torch.save({"spec": spec}, out_file.with_suffix(".spec.pth"))
    return {"backend": "modelopt.pytorch", "config": "INT8_DEFAULT_CFG", "calibration_images":
            sum(int(b.shape[0]) for b in calibration), "model_file": str(out_file)}

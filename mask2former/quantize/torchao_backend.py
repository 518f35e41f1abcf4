"""Weight-only int8 of a checkpoint with torchao (`quantize.backend: torchao`), saved so it loads back.

Every selected `nn.Linear` gets int8 weights with one scale per output channel (torchao's
`Int8WeightOnlyConfig`); activations stay float. `nn.MultiheadAttention`'s output projection is never
selected: PyTorch calls it through `F.multi_head_attention_forward`, which torchao's int8 tensor does not
support (it is a `NonDynamicallyQuantizableLinear`, not a plain `Linear`).

Saved file (`results_dir/mask2former_int8_torchao.pth`):
`{"format": "mask2former-torchao/1", "spec": <the checkpoint's spec>, "state_dict": <quantized weights>,
  "quantization": {"backend", "config", "modules": [qualified names], "kwargs"}}`.
`load_quantized_model(path)` rebuilds the float model from `spec`, quantizes the same modules and loads
the int8 weights (plain `torch.load(weights_only=True)`: torchao registers its tensor types as safe).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mask2former.quantize.settings import QuantizeSettings, select
from skillkit.errors import DataError, SpecError, UserError

FORMAT = "mask2former-torchao/1"
QUANTIZED_NAME = "mask2former_int8_torchao.pth"


def _torchao():
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it logs missing CUDA kernels on CPU machines
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as error:
        raise UserError("quantize.backend=torchao needs the `torchao` package: `pip install -c constraints.txt "
                        "torchao` (0.18 works with torch 2.13), or use quantize.backend=onnxruntime on an exported "
                        "ONNX file.") from error
    return Int8WeightOnlyConfig, quantize_


def _config(settings_kwargs: dict[str, Any]):
    config_cls, _ = _torchao()
    accepted = set(inspect.signature(config_cls).parameters)
    unknown = sorted(set(settings_kwargs) - accepted)
    if unknown:
        raise SpecError(f"quantize.backend_kwargs {unknown} are not arguments of torchao's {config_cls.__name__}; "
                        f"allowed: {sorted(accepted)}.")
    return config_cls(**settings_kwargs)


def selected_modules(model: nn.Module, settings: QuantizeSettings) -> list[str]:
    """Qualified names of the Linear modules to quantize (layer rules and skip_names applied)."""
    chosen = []
    for name, module in model.named_modules():
        if type(module) is not nn.Linear:  # noqa: E721 - subclasses (MHA's out_proj) are not supported
            continue
        weights, _ = select(name, type(module).__name__, settings, default=True)
        if weights:
            chosen.append(name)
    return chosen


def quantize_model(model: nn.Module, modules: list[str], kwargs: dict[str, Any]) -> nn.Module:
    """Quantize `modules` of `model` in place (int8 weight-only) and return it."""
    _, quantize_ = _torchao()
    wanted = set(modules)
    quantize_(model, _config(kwargs), filter_fn=lambda module, fqn: fqn in wanted)
    return model


def quantize_checkpoint(model: nn.Module, spec: dict[str, Any], settings: QuantizeSettings,
                        out_file: str | os.PathLike[str]) -> dict[str, Any]:
    """Quantize `model` (the checkpoint's float model) and save it; returns the quantization record."""
    modules = selected_modules(model, settings)
    if not modules:
        raise SpecError("quantize.layers / quantize.skip_names leave no nn.Linear module to quantize; nothing to do.")
    quantize_model(model, modules, settings.backend_kwargs)
    record = {"backend": "torchao", "config": "Int8WeightOnlyConfig", "modules": modules,
              "kwargs": settings.backend_kwargs}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "spec": spec, "state_dict": model.state_dict(), "quantization": record}, out_file)
    return record


def load_quantized_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """(quantized model in eval mode, spec) from a file written by `quantize_checkpoint`."""
    from mask2former.config import config_from_dict
    from mask2former.model import build_model

    _torchao()  # registers torchao's tensor subclasses for weights-only unpickling
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"quantized model '{path}' does not exist.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"'{path}' is not a torchao-quantized Mask2Former written by `mask2former quantize` "
                        f"(format {FORMAT}).")
    spec, record = data["spec"], data["quantization"]
    model = build_model(config_from_dict(spec), load_pretrained=False)
    quantize_model(model, list(record["modules"]), dict(record.get("kwargs") or {}))
    model.load_state_dict(data["state_dict"], assign=True)
    return model.eval(), spec

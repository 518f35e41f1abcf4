"""`quantize.*` read once and checked per backend, plus TAO's layer-selection rules.

Layer rules (TAO's `LayerQuantizationConfig` shape): `quantize.layers` is a list of
`{"module_name": pattern, "weights": {"dtype": "int8"} | [{"dtype": "int8", ...}] | [],
  "activations": {"dtype": "int8"} | [...] | []}` and `quantize.skip_names` a list of patterns.
A pattern (fnmatch, case-sensitive) matches a module's qualified name (`backbone.layers.0.blocks.0.attn.qkv`)
or, failing that, its class name (`Linear`). For the ONNX backends the same patterns match ONNX node
names (`/model/backbone/layers.0/...`) or op types (`MatMul`, `Conv`).

An empty `weights` list leaves the matched layers in float (TAO's meaning); only `int8` is supported.
With no `layers`, each backend quantizes its default set (torchao: every `nn.Linear`; ONNX backends:
Conv / MatMul / Gemm nodes of the network, not the exported post-processing). `skip_names` always wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skillkit.errors import SpecError

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig

BACKENDS = ("torchao", "onnxruntime", "modelopt.onnx", "modelopt.pytorch")
SUPPORTED_DTYPES = ("int8",)


@dataclass(frozen=True)
class LayerRule:
    """One `quantize.layers` entry: `pattern`, and whether weights / activations are quantized (int8)."""

    pattern: str
    weights: bool
    activations: bool


@dataclass(frozen=True)
class QuantizeSettings:
    backend: str
    mode: str
    algorithm: str
    model_path: str
    layers: tuple[LayerRule, ...] = ()
    skip_names: tuple[str, ...] = ()
    backend_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


def _dtype_flag(value: Any, key: str) -> bool:
    """True when the entry asks for int8, False for an empty list / None (left in float)."""
    if value in (None, [], {}):
        return False
    entries = value if isinstance(value, list) else [value]
    flags = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "dtype" not in entry:
            raise SpecError(f"{key} entries must be mappings with a 'dtype' (e.g. {{dtype: int8}}), got {entry!r}.")
        dtype = str(entry["dtype"]).lower()
        if dtype not in SUPPORTED_DTYPES:
            raise SpecError(f"{key}.dtype={entry['dtype']!r} is not supported here; allowed: {', '.join(SUPPORTED_DTYPES)}.")
        flags.append(True)
    return any(flags)


def parse_layers(layers: Iterable[Any]) -> tuple[LayerRule, ...]:
    rules = []
    for index, entry in enumerate(layers or []):
        key = f"quantize.layers[{index}]"
        if not isinstance(entry, Mapping) or not entry.get("module_name"):
            raise SpecError(f"{key} must be a mapping with a non-empty 'module_name' pattern, got {entry!r}.")
        unknown = sorted(set(entry) - {"module_name", "weights", "activations"})
        if unknown:
            raise SpecError(f"{key} has unknown keys {unknown}; allowed: module_name, weights, activations.")
        rules.append(LayerRule(pattern=str(entry["module_name"]),
                               weights=_dtype_flag(entry.get("weights"), f"{key}.weights"),
                               activations=_dtype_flag(entry.get("activations"), f"{key}.activations")))
    return tuple(rules)


def quantize_settings(cfg: ExperimentConfig) -> QuantizeSettings:
    """`cfg.quantize` validated for its backend (SpecError names the key, the value and what is allowed)."""
    q = cfg.quantize
    backend = str(q.backend)
    if backend not in BACKENDS:
        raise SpecError(f"quantize.backend={backend!r}; allowed: {', '.join(BACKENDS)}.")
    mode, algorithm, device = str(q.mode), str(q.algorithm), str(q.device)
    if backend in ("torchao",) and mode != "weight_only_ptq":
        raise SpecError(f"quantize.mode={mode} with quantize.backend=torchao: the torchao backend does weight-only "
                        "int8 (mode weight_only_ptq). For static PTQ (int8 activations too) use quantize.backend "
                        "onnxruntime (CPU) or modelopt.onnx.")
    if backend == "torchao" and algorithm not in ("minmax", "max"):
        raise SpecError(f"quantize.algorithm={algorithm} with quantize.backend=torchao: weight-only int8 uses the "
                        "per-channel absolute maximum of each weight; use algorithm minmax (or max).")
    if backend == "onnxruntime":
        if mode != "static_ptq":
            raise SpecError(f"quantize.mode={mode} with quantize.backend=onnxruntime: this backend runs static int8 "
                            "PTQ with calibration images; set quantize.mode=static_ptq (weight-only int8 of the "
                            "checkpoint is quantize.backend=torchao).")
        if algorithm not in ("minmax", "max", "entropy"):
            raise SpecError(f"quantize.algorithm={algorithm} with quantize.backend=onnxruntime; allowed: minmax, max "
                            "(both: min/max calibration) or entropy.")
    if device == "trt" and backend != "modelopt.onnx":
        raise SpecError(f"quantize.device=trt is only for quantize.backend=modelopt.onnx (got {backend}); use cpu or cuda.")
    if not isinstance(q.backend_kwargs, Mapping):
        raise SpecError(f"quantize.backend_kwargs must be a mapping of keyword arguments, got {q.backend_kwargs!r}.")
    return QuantizeSettings(backend=backend, mode=mode, algorithm=algorithm, model_path=str(q.model_path or ""),
                            layers=parse_layers(q.layers), skip_names=tuple(str(s) for s in q.skip_names or ()),
                            backend_kwargs=dict(q.backend_kwargs), device=device)


def matches(pattern: str, name: str, kind: str) -> bool:
    """TAO's rule: the qualified name first, then the class / op type."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(kind, pattern)


def select(name: str, kind: str, settings: QuantizeSettings, *, default: bool) -> tuple[bool, bool]:
    """(quantize weights, quantize activations) for one module / node; the last matching rule wins."""
    if any(matches(p, name, kind) for p in settings.skip_names):
        return False, False
    chosen: tuple[bool, bool] | None = None
    for rule in settings.layers:
        if matches(rule.pattern, name, kind):
            chosen = (rule.weights, rule.activations)
    if chosen is None:
        return (default, default) if not settings.layers else (False, False)
    return chosen

"""An exported ONNX graph -> a TensorRT engine (FP32 or FP16): the builder behind `mask2former gen_trt_engine`
(the action, with its status lines, is `mask2former/actions/gen_trt_engine.py`).

Settings (`gen_trt_engine.*`): `onnx_file`, `trt_engine` (output), `tensorrt.data_type` FP32 | FP16
(lower case accepted), `tensorrt.workspace_size` (MiB), the optimisation profile
`tensorrt.min_batch_size` <= `opt_batch_size` <= `max_batch_size` (a fixed `batch_size` >= 1 replaces it
with [batch_size] x 3), `tensorrt.layers_precision` (`"<layer name or glob>:fp32|fp16"`, obeyed strictly),
`timing_cache` (read if present, written back after the build; default `<results_dir>/timing.cache`),
`verbose`, `gpu_id`.

INT8 is refused: an implicitly calibrated INT8 engine would need a calibrator and data the action does
not take, and it would silently differ from what `quantize` reports. Integer models come from
`mask2former quantize` (ONNX Runtime or ModelOpt backends).

Every spec value is checked before TensorRT is imported, so mistakes surface on any machine; then, without
the `tensorrt` package or a GPU, the action stops with a message pointing to the ONNX Runtime path.
Beside the engine, `<engine>.json` keeps the graph metadata (mode, classes, input size) plus the engine's
precision and profile, which `TensorRTBackend` reads.
"""

from __future__ import annotations

import fnmatch
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from skillkit.errors import DataError, SpecError, UserError

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig

PRECISIONS = ("FP32", "FP16")
LAYER_PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class EngineSettings:
    """Validated builder settings (see the module docstring)."""

    data_type: str
    workspace_mib: int
    min_batch: int
    opt_batch: int
    max_batch: int
    layers_precision: tuple[tuple[str, str], ...] = ()
    timing_cache: str = ""
    verbose: bool = False
    gpu_id: int = 0


class GraphInput(NamedTuple):
    """The image input of an exported graph: batch (-1 = dynamic), height and width."""

    batch: int
    height: int
    width: int


def engine_settings(cfg: ExperimentConfig) -> EngineSettings:
    """Read and check `gen_trt_engine.*`; SpecError names the key and the rule."""
    section = cfg.gen_trt_engine
    trt_cfg = section.tensorrt
    data_type = str(trt_cfg.data_type).upper()
    if data_type == "INT8":
        raise SpecError(
            "gen_trt_engine.tensorrt.data_type=INT8 is not supported: an INT8 TensorRT engine needs implicit "
            "calibration (a calibrator, calibration data and a calibration cache) that this action does not "
            "take, and its accuracy would not be the one `mask2former quantize` reports. Build an FP16 or FP32 "
            "engine, and get integer models from `mask2former quantize` (quantize.backend onnxruntime on CPU, "
            "modelopt.onnx with NVIDIA ModelOpt).")
    if data_type not in PRECISIONS:
        raise SpecError(f"gen_trt_engine.tensorrt.data_type={trt_cfg.data_type!r}; allowed: FP32, FP16 (or fp32, fp16).")
    if section.batch_size is not None and int(section.batch_size) >= 1:
        low = opt = high = int(section.batch_size)
    elif int(section.batch_size) == -1:
        low, opt, high = int(trt_cfg.min_batch_size), int(trt_cfg.opt_batch_size), int(trt_cfg.max_batch_size)
        if not 1 <= low <= opt <= high:
            raise SpecError(
                "gen_trt_engine.tensorrt batch profile must satisfy 1 <= min_batch_size <= opt_batch_size <= "
                f"max_batch_size, got {low} / {opt} / {high}.")
    else:
        raise SpecError(f"gen_trt_engine.batch_size={section.batch_size}: use -1 (the min/opt/max profile) or >= 1.")
    if int(trt_cfg.workspace_size) < 1:
        raise SpecError(f"gen_trt_engine.tensorrt.workspace_size={trt_cfg.workspace_size} must be >= 1 (MiB).")
    layers: list[tuple[str, str]] = []
    for entry in trt_cfg.layers_precision or []:
        name, sep, precision = str(entry).rpartition(":")
        if not sep or not name or precision.lower() not in LAYER_PRECISIONS:
            raise SpecError(
                f"gen_trt_engine.tensorrt.layers_precision entry {entry!r} must be '<layer name or glob>:<precision>' "
                f"with precision one of {', '.join(LAYER_PRECISIONS)} (e.g. '/model/backbone/*:fp32').")
        layers.append((name, precision.lower()))
    return EngineSettings(data_type=data_type, workspace_mib=int(trt_cfg.workspace_size), min_batch=low,
                          opt_batch=opt, max_batch=high, layers_precision=tuple(layers),
                          timing_cache=str(section.timing_cache or ""), verbose=bool(section.verbose),
                          gpu_id=int(section.gpu_id))


def check_onnx_batch(onnx_file: Path, settings: EngineSettings) -> GraphInput:
    """(batch, H, W) of the graph input (batch -1 = dynamic); a fixed-batch graph needs a matching profile."""
    import onnx

    if not onnx_file.is_file():
        raise DataError(f"gen_trt_engine.onnx_file '{onnx_file}' does not exist; export one with `mask2former export`.")
    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    if len(values) != 4 or values[2] < 1 or values[3] < 1:
        raise DataError(f"'{onnx_file}' does not take [batch, 3, H, W] images with a fixed H and W (input shape "
                        f"{values}); export it with `mask2former export`.")
    batch = values[0]
    if batch >= 1 and not settings.min_batch == settings.opt_batch == settings.max_batch == batch:
        raise SpecError(
            f"'{onnx_file}' was exported with a fixed batch of {batch} (export.batch_size), so the engine profile "
            f"must be {batch}/{batch}/{batch}, got min/opt/max {settings.min_batch}/{settings.opt_batch}/"
            f"{settings.max_batch}. Set gen_trt_engine.batch_size={batch}, or export with export.batch_size=-1.")
    return GraphInput(batch, values[2], values[3])


def build_engine(onnx_file: str | Path, engine_file: str | Path, settings: EngineSettings, *,
                 timing_cache: str | Path | None = None) -> dict[str, Any]:
    """Build and serialize the engine; returns what was built (also written to `<engine>.json`)."""
    from mask2former.deploy.backends import import_tensorrt
    from mask2former.export.graph_checks import read_metadata, sidecar_path

    onnx_file, engine_file = Path(onnx_file), Path(engine_file)
    graph_input = check_onnx_batch(onnx_file, settings)
    height, width = graph_input.height, graph_input.width
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise UserError("building a TensorRT engine needs a CUDA GPU, and none is visible. Deploy the ONNX file with "
                        "ONNX Runtime instead (evaluate.trt_engine / inference.trt_engine = the .onnx file).")
    torch.cuda.set_device(settings.gpu_id)
    logger = trt.Logger(trt.Logger.VERBOSE if settings.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # required before TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DataError(f"TensorRT cannot parse '{onnx_file}': {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    if settings.data_type == "FP16":
        config.set_flag(trt.BuilderFlag.FP16)
    matched = _apply_layer_precisions(trt, network, config, settings.layers_precision)
    profile = builder.create_optimization_profile()
    source = network.get_input(0)
    channels = int(source.shape[1])
    profile.set_shape(source.name, (settings.min_batch, channels, height, width),
                      (settings.opt_batch, channels, height, width), (settings.max_batch, channels, height, width))
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cache_reused = cache_path is not None and cache_path.is_file()
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path is not None and cache_reused else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from '{onnx_file}' (see the TensorRT log above).")
    build_seconds = time.perf_counter() - started
    engine_file.parent.mkdir(parents=True, exist_ok=True)
    engine_file.write_bytes(bytes(serialized))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    info = dict(read_metadata(onnx_file) or {})
    info.update({"engine": str(engine_file), "onnx_file": str(onnx_file), "tensorrt_version": trt.__version__,
                 "data_type": settings.data_type, "profile": [settings.min_batch, settings.opt_batch, settings.max_batch],
                 "timing_cache": str(cache_path) if cache_path else "", "timing_cache_reused": cache_reused,
                 "layers_precision": {name: precision for name, precision in matched},
                 "build_seconds": round(build_seconds, 3), "settings": asdict(settings)})
    sidecar_path(engine_file).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _apply_layer_precisions(trt: Any, network: Any, config: Any,
                            rules: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Pin matching layers to their precision (obeyed strictly); a rule matching nothing is an error."""
    if not rules:
        return []
    kinds = {"fp32": trt.float32, "fp16": trt.float16}
    matched: list[tuple[str, str]] = []
    for pattern, precision in rules:
        hits = [network.get_layer(i) for i in range(network.num_layers)
                if fnmatch.fnmatchcase(network.get_layer(i).name, pattern)]
        if not hits:
            raise SpecError(f"gen_trt_engine.tensorrt.layers_precision pattern {pattern!r} matches no layer of the "
                            "network (names look like '/model/backbone/layers.0/...'; run with verbose: true to see them).")
        for layer in hits:
            layer.precision = kinds[precision]
            for index in range(layer.num_outputs):
                layer.set_output_type(index, kinds[precision])
            matched.append((layer.name, precision))
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return matched

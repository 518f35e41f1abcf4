"""Sections of the non-training actions: evaluate, inference, export, gen_trt_engine, quantize."""

from __future__ import annotations

from dataclasses import dataclass

from mask2former.config.fields import (
    bool_field,
    dict_field,
    enum_field,
    int_field,
    list_field,
    section,
    str_field,
)

MANDATORY = "???"


@dataclass
class EvaluateConfig:
    num_gpus: int = int_field(1, title="GPUs", minimum=1, description="GPUs per node.")
    gpu_ids: list = list_field([0], title="GPU ids", item_type="int", minimum=0, description="Indices of the GPUs to use.")
    num_nodes: int = int_field(1, title="nodes", minimum=1, description="Machines.")
    checkpoint: str = str_field(MANDATORY, title="checkpoint", required=True, description="Checkpoint to evaluate.")
    trt_engine: str = str_field("", title="TensorRT engine or ONNX file", description="Deploy-side evaluation: a TensorRT engine, or an ONNX file run with ONNX Runtime.")
    results_dir: str = str_field("", title="results directory", description="Where results are written.")
    batch_size: int = int_field(-1, title="batch size", minimum=-1, description="Batch size; -1 uses dataset.val.batch_size.")


@dataclass
class InferenceConfig:
    num_gpus: int = int_field(1, title="GPUs", minimum=1, description="GPUs per node.")
    gpu_ids: list = list_field([0], title="GPU ids", item_type="int", minimum=0, description="Indices of the GPUs to use.")
    num_nodes: int = int_field(1, title="nodes", minimum=1, description="Machines.")
    checkpoint: str = str_field(MANDATORY, title="checkpoint", required=True, description="Checkpoint to run.")
    trt_engine: str = str_field("", title="TensorRT engine or ONNX file", description="Deploy-side inference: a TensorRT engine, or an ONNX file run with ONNX Runtime.")
    results_dir: str = str_field("", title="results directory", description="Where predictions are written.")
    batch_size: int = int_field(-1, title="batch size", minimum=-1, description="Batch size; -1 uses dataset.test.batch_size.")


@dataclass
class ExportConfig:
    results_dir: str = str_field("", title="results directory", description="Where export writes.")
    gpu_id: int = int_field(0, title="GPU id", minimum=0, description="GPU used for export.")
    checkpoint: str = str_field(MANDATORY, title="checkpoint", required=True, description="Checkpoint to export.")
    onnx_file: str = str_field(MANDATORY, title="ONNX file", required=True, description="Path of the ONNX file to write.")
    on_cpu: bool = bool_field(False, title="export on CPU", description="Export a CPU-compatible graph.")
    input_channel: int = int_field(3, title="input channels", minimum=3, maximum=3, description="Channels of the input tensor.")
    input_width: int = int_field(960, title="input width", minimum=32, description="Width of the exported input.")
    input_height: int = int_field(544, title="input height", minimum=32, description="Height of the exported input.")
    opset_version: int = int_field(17, title="opset version", minimum=1, description="ONNX operator set.")
    batch_size: int = int_field(-1, title="batch size", minimum=-1, description="Batch size of the input; -1 makes it dynamic.")
    verbose: bool = bool_field(False, title="verbose", description="Verbose export logging.")


@dataclass
class TensorRTConfig:
    data_type: str = enum_field("FP32", ("FP32", "FP16", "INT8", "fp32", "fp16", "int8"), title="engine precision",
                                description="Engine precision. INT8 is rejected: use quantize for integer models.")
    workspace_size: int = int_field(1024, title="workspace (MiB)", minimum=1, description="Builder workspace in MiB.")
    min_batch_size: int = int_field(1, title="min batch", minimum=1, description="Smallest batch of the optimisation profile.")
    opt_batch_size: int = int_field(1, title="optimal batch", minimum=1, description="Batch the engine is tuned for.")
    max_batch_size: int = int_field(1, title="max batch", minimum=1, description="Largest batch of the optimisation profile.")
    layers_precision: list = list_field([], title="per-layer precision", item_type="string", description="Entries layer_name:precision.")


@dataclass
class GenTrtEngineConfig:
    results_dir: str = str_field("", title="results directory", description="Where engine generation writes.")
    gpu_id: int = int_field(0, title="GPU id", minimum=0, description="GPU the engine is built on.")
    onnx_file: str = str_field(MANDATORY, title="ONNX file", required=True, description="ONNX model to convert.")
    trt_engine: str = str_field(MANDATORY, title="engine file", required=True, description="Path of the engine to write.")
    timing_cache: str = str_field("", title="timing cache", description="TensorRT timing cache file, reused across builds.")
    batch_size: int = int_field(-1, title="batch size", minimum=-1, description="Batch size; -1 uses the min/opt/max profile.")
    verbose: bool = bool_field(False, title="verbose", description="Verbose TensorRT logging.")
    tensorrt: TensorRTConfig = section(TensorRTConfig, title="TensorRT", description="Builder settings.")


@dataclass
class QuantizeConfig:
    backend: str = enum_field("torchao", ("modelopt.pytorch", "torchao", "modelopt.onnx", "onnxruntime"), title="backend",
                              description="torchao: weight-only int8 of the checkpoint; modelopt.*: NVIDIA ModelOpt when installed; onnxruntime: static int8 PTQ of the ONNX model on CPU.")
    mode: str = enum_field("weight_only_ptq", ("static_ptq", "weight_only_ptq"), title="mode", description="Post-training quantization mode.")
    algorithm: str = enum_field("minmax", ("minmax", "max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"), title="calibration algorithm",
                                description="Calibration method (ModelOpt and ONNX Runtime backends).")
    layers: list = list_field([], title="layer configs", description="Per-layer quantization settings.")
    skip_names: list = list_field([], title="skipped layers", item_type="string", description="Module names left in float.")
    model_path: str = str_field("", title="model path", description="Checkpoint or ONNX file to quantize.")
    results_dir: str = str_field("", title="results directory", description="Where quantization writes.")
    backend_kwargs: dict = dict_field({}, title="backend kwargs", description="Extra keyword arguments for the backend.")
    device: str = str_field("cuda", title="calibration device", pattern="^(cuda|cpu|trt|cuda:[0-9]+)$",
                            description="Device for calibration: cuda, cuda:N, cpu, or trt (modelopt.onnx only).")

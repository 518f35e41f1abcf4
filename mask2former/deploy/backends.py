"""Inference backends: one interface over PyTorch eager, ONNX Runtime and TensorRT.

Contract (`InferenceBackend`):

* `predict(images)` takes the batch tensor exactly as the PyTorch evaluate/inference path feeds the model
  (float32 [B, 3, H, W], from the data package's collate) and returns
  `{"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, H/4, W/4]}` as float32 CPU tensors: the structure
  `mask2former.model.postprocessing.Postprocessor` (and the metrics suite) consume. A deployed graph
  therefore goes through the very same post-processing, metrics and output writers as the checkpoint.
* `outputs(images)` returns every named output of the graph (TAO's `pred_masks`, `pred_scores`, ... and the
  raw `raw_pred_logits` / `raw_pred_masks`) as CPU tensors.
* Graph backends have a fixed input size (`input_size`, (H, W)) and a batch range (`batch_range`):
  larger batches are split into chunks, and a chunk smaller than the graph's minimum batch is padded
  by repeating its last image (the padding is dropped from the results).
* A backend is used from one thread; `close()` releases the session / engine (also via `with`).

`open_backend(path)` picks the runtime by file: `.onnx` -> ONNX Runtime, anything else (`.engine`,
`.plan`, `.trt`) -> TensorRT. Graph metadata (mode, classes, input size) comes from the ONNX file's
`mask2former.export` metadata, or from `<engine>.json` written beside an engine by `gen_trt_engine`;
without either it is read off the graph's input/output shapes.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mask2former.export.graph_checks import read_metadata, sidecar_path
from mask2former.export.heads import OUTPUT_NAMES, ExportableMask2Former
from skillkit.errors import DataError, UserError

RAW_LOGITS, RAW_MASKS = "raw_pred_logits", "raw_pred_masks"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class InferenceBackend(abc.ABC):
    """See the module docstring for the contract."""

    name: str = "backend"

    def __init__(self, metadata: Mapping[str, Any] | None = None) -> None:
        self.metadata: dict[str, Any] = dict(metadata or {})

    # -- what the graph accepts ----------------------------------------------------------------------
    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) the graph was built for; None when any size works."""
        if "input_height" in self.metadata:
            return int(self.metadata["input_height"]), int(self.metadata["input_width"])
        return None

    @property
    def batch_range(self) -> tuple[int, int] | None:
        """(smallest, largest) batch per call; None when any batch works."""
        return None

    @property
    def mode(self) -> str | None:
        return self.metadata.get("mode")

    @property
    def num_classes(self) -> int | None:
        value = self.metadata.get("num_classes")
        return None if value is None else int(value)

    # -- running ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _run(self, images: Tensor) -> dict[str, Tensor]:
        """One call with a batch inside `batch_range`; every named output as a CPU tensor."""

    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Every named output for any batch size (chunked / padded to `batch_range`)."""
        self._check_size(images)
        limits = self.batch_range
        total = int(images.shape[0])
        if limits is None or limits[0] <= total <= limits[1]:
            return self._run(images)
        low, high = limits
        pieces: list[dict[str, Tensor]] = []
        for start in range(0, total, high):
            chunk = images[start:start + high]
            real = int(chunk.shape[0])
            if real < low:  # repeat the last image up to the minimum batch
                chunk = torch.cat([chunk, chunk[-1:].expand(low - real, *chunk.shape[1:])], 0)
            pieces.append({k: v[:real] for k, v in self._run(chunk).items()})
        return {k: torch.cat([p[k] for p in pieces], 0) for k in pieces[0]}

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        """{"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, h, w]} float32 CPU tensors."""
        values = self.outputs(images)
        if RAW_LOGITS not in values or RAW_MASKS not in values:
            raise UserError(
                f"{self.name} graph '{self.metadata.get('path', '?')}' has no {RAW_LOGITS}/{RAW_MASKS} outputs, so "
                "it cannot be evaluated with this project's post-processing. Export it with `mask2former export` "
                f"(outputs {sorted(values)} were found).")
        return {"pred_logits": values[RAW_LOGITS].float(), "pred_masks": values[RAW_MASKS].float()}

    def _check_size(self, images: Tensor) -> None:
        size = self.input_size
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        if size is not None and tuple(images.shape[-2:]) != size:
            raise DataError(
                f"the {self.name} graph takes {size[0]}x{size[1]} (height x width) images, got "
                f"{int(images.shape[-2])}x{int(images.shape[-1])}; resize the data to the export size "
                "(dataset.<split>.target_size) or export again at the size you need.")

    def close(self) -> None:  # noqa: B027 - an optional hook: most runtimes have nothing to release
        """Release the runtime's resources."""

    def __enter__(self) -> InferenceBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TorchBackend(InferenceBackend):
    """PyTorch eager. With `mode` and `output_size`, `outputs()` also runs the export post-processing
    (`ExportableMask2Former`), so eager and graph runtimes are timed on the same work."""

    name = "pytorch"

    def __init__(self, model: nn.Module, *, device: torch.device | str = "cpu", mode: str | None = None,
                 output_size: tuple[int, int] | None = None, topk: int = 100) -> None:
        super().__init__({"mode": mode} if mode else {})
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.wrapper = None
        if mode is not None and output_size is not None:
            self.wrapper = ExportableMask2Former(self.model, mode=mode, output_size=output_size, topk=topk)
            self.metadata.update({"input_height": int(output_size[0]), "input_width": int(output_size[1])})

    @torch.no_grad()
    def _run(self, images: Tensor) -> dict[str, Tensor]:
        images = images.to(self.device, torch.float32)
        if self.wrapper is None:
            raw = self.model(images)
            return {RAW_LOGITS: raw["pred_logits"].float().cpu(), RAW_MASKS: raw["pred_masks"].float().cpu()}
        values = self.wrapper(images)
        names = list(OUTPUT_NAMES[self.wrapper.mode]) + [RAW_LOGITS, RAW_MASKS]
        return {name: value.cpu() for name, value in zip(names, values)}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class OnnxRuntimeBackend(InferenceBackend):
    """ONNX Runtime session over an exported graph (CUDA provider when available, else CPU)."""

    name = "onnxruntime"

    def __init__(self, onnx_file: str | os.PathLike[str], *, providers: list[str] | None = None,
                 intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(onnx_file)
        if not path.is_file():
            raise DataError(f"ONNX file '{onnx_file}' does not exist: write it with `mask2former export` first (after a "
                            "sweep: `mask2former export -e <sweep>/best/export_spec.yaml`).")
        metadata = read_metadata(path) or {}
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # noqa: BLE001 - an unreadable graph is a data problem for the user
            raise DataError(f"ONNX Runtime cannot load '{onnx_file}': {error}") from error
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        shape = self.session.get_inputs()[0].shape
        inferred = metadata_from_io(self.output_names, {o.name: o.shape for o in self.session.get_outputs()}, shape)
        super().__init__({**inferred, **metadata, "path": str(path)})
        self._batch = shape[0] if isinstance(shape[0], int) else None
        self.providers = self.session.get_providers()

    @property
    def batch_range(self) -> tuple[int, int] | None:
        return None if self._batch is None else (self._batch, self._batch)

    def _run(self, images: Tensor) -> dict[str, Tensor]:
        feed = {self.input_name: images.detach().to("cpu", torch.float32).contiguous().numpy()}
        values = self.session.run(None, feed)
        return {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in zip(self.output_names, values)}

    def close(self) -> None:
        self.session = None


class TensorRTBackend(InferenceBackend):
    """A serialized TensorRT engine (TensorRT >= 10 tensor API), run on CUDA with torch-allocated buffers."""

    name = "tensorrt"

    def __init__(self, engine_file: str | os.PathLike[str], *, device: torch.device | str = "cuda") -> None:
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise UserError("a TensorRT engine needs a CUDA GPU, and none is visible. Run the ONNX file with ONNX "
                            "Runtime instead: set evaluate.trt_engine / inference.trt_engine to the .onnx file.")
        path = Path(engine_file)
        if not path.is_file():
            raise DataError(f"TensorRT engine '{engine_file}' does not exist: build it with `mask2former gen_trt_engine` "
                            "first (after a sweep: `-e <sweep>/best/deploy_gen_trt_engine_spec.yaml`), or run the "
                            "exported .onnx with ONNX Runtime (the sweep's best/deploy_<action>_onnxruntime_spec.yaml).")
        self.device = torch.device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise DataError(f"'{engine_file}' is not a TensorRT engine for this TensorRT version / GPU; rebuild it "
                            "with `mask2former gen_trt_engine`.")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.inputs]
        self._dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        low, _, high = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
        self._range = (int(low[0]), int(high[0]))
        sidecar = sidecar_path(path)
        metadata = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        shapes = {n: list(self.engine.get_tensor_shape(n)) for n in self.output_names}
        inferred = metadata_from_io(self.output_names, shapes, list(self.engine.get_tensor_shape(self.inputs[0])))
        super().__init__({**inferred, **metadata, "path": str(path)})

    @property
    def batch_range(self) -> tuple[int, int] | None:
        return self._range

    def _run(self, images: Tensor) -> dict[str, Tensor]:
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            source = images.to(self.device, self._dtypes[self.inputs[0]]).contiguous()
            self.context.set_input_shape(self.inputs[0], tuple(source.shape))
            self.context.set_tensor_address(self.inputs[0], source.data_ptr())
            results: dict[str, Tensor] = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                results[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self.context.set_tensor_address(name, results[name].data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed (execute_async_v3 returned False)")
            stream.synchronize()
        return {name: value.cpu() for name, value in results.items()}

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self.context = None
        self.engine = None


def import_tensorrt():
    """The `tensorrt` module, or a UserError saying what to do without it."""
    try:
        import tensorrt
    except ImportError as error:
        raise UserError(
            "TensorRT is needed for this step but the `tensorrt` Python package is not installed (it ships with "
            "NVIDIA's TensorRT for CUDA GPUs: `pip install tensorrt` on a GPU machine). Without it, deploy with "
            "ONNX Runtime: set evaluate.trt_engine / inference.trt_engine to the .onnx file written by "
            "`mask2former export`.") from error
    return tensorrt


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dtype]


def metadata_from_io(output_names: list[str], output_shapes: Mapping[str, Any], input_shape: Any) -> dict[str, Any]:
    """Best-effort metadata from the graph itself: mode from TAO's output names, K from the raw logits,
    (H, W) from the input shape."""
    tao = tuple(n for n in output_names if not n.startswith("raw_"))
    mode = next((m for m, names in OUTPUT_NAMES.items() if names == tao), None)
    info: dict[str, Any] = {}
    if mode:
        info["mode"] = mode
    logits = output_shapes.get(RAW_LOGITS)
    if logits and isinstance(logits[-1], int) and logits[-1] > 0:
        info["num_classes"] = int(logits[-1]) - 1
    if input_shape and len(input_shape) == 4 and all(isinstance(v, int) and v > 0 for v in input_shape[2:]):
        info["input_height"], info["input_width"] = int(input_shape[2]), int(input_shape[3])
    return info


def open_backend(path: str | os.PathLike[str], *, device: torch.device | str | None = None,
                 intra_op_threads: int | None = None) -> InferenceBackend:
    """`.onnx` -> ONNX Runtime; `.engine` / `.plan` / `.trt` (or any other file) -> TensorRT."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return OnnxRuntimeBackend(path, intra_op_threads=intra_op_threads)
    return TensorRTBackend(path, device=device or "cuda")

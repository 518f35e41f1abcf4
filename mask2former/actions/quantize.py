"""`mask2former quantize -e spec.yaml [a.b=c ...]`: quantize, then score the float and the quantized model.

`quantize.model_path` is the training checkpoint for torchao / modelopt.pytorch and the exported ONNX file
for onnxruntime / modelopt.onnx (the job chain fills it that way). Backends: see `settings.py` and the
backend modules. After quantizing, both models are evaluated on the split the PyTorch evaluate would use
(`dataset.test` when it names annotations, else `dataset.val`) with the same data pipeline and metrics
(`mask2former.deploy.evaluate.evaluate_backend`), and `results_dir/quantize_report.json` records:

    {"backend", "mode", "algorithm", "model_path", "quantized_model", "quantization": {...},
     "size_bytes": {"float", "quantized"}, "size_ratio", "split", "num_images",
     "metrics": {"float": {...}, "quantized": {...}, "change": {name: quantized - float}},
     "seconds_per_image": {"float", "quantized"}}

Without evaluation data in the spec the metrics are left out (null) and a WARNING line says why.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former.actions.status import cli_handler, recorded

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig

REPORT_NAME = "quantize_report.json"


def _has_eval_data(cfg: ExperimentConfig) -> tuple[bool, str]:
    from mask2former.data.build import REQUIRED_FIELDS, evaluation_split

    split = evaluation_split(cfg.dataset)
    split_cfg = getattr(cfg.dataset, split)
    needed = REQUIRED_FIELDS.get(split_cfg.type, ())
    missing = [name for name in needed if not getattr(split_cfg, name, "")]
    if missing:
        return False, (f"no evaluation data: dataset.{split} needs {', '.join(f'dataset.{split}.{m}' for m in missing)} "
                       "to report the metric change")
    return True, split


def _state_dict_bytes(model: Any) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _torch_device(settings: Any):
    import torch

    if settings.device.startswith("cuda") and torch.cuda.is_available():
        return torch.device(settings.device)
    return torch.device("cpu")


def run_quantize(cfg: ExperimentConfig, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Quantize per `cfg.quantize`; returns the report (also written to results_dir/quantize_report.json)."""
    from mask2former.actions.common import action_results_dir
    from mask2former.quantize.settings import quantize_settings
    from skillkit.errors import SpecError
    from skillkit.status.writer import RUNNING, SUCCESS, WARNING

    results_dir = action_results_dir(cfg, "quantize")
    with recorded(results_dir, f"Quantizing {cfg.quantize.model_path} with {cfg.quantize.backend}") as writer:
        settings = quantize_settings(cfg)
        if settings.backend.startswith("modelopt"):
            from mask2former.quantize.modelopt_backend import check_modelopt_settings, import_modelopt

            check_modelopt_settings(settings)
            import_modelopt(settings.backend)
        if not settings.model_path:
            what = "exported .onnx file" if settings.backend in ("onnxruntime", "modelopt.onnx") else "training checkpoint"
            raise SpecError(f"quantize.model_path is empty: set it to the {what} to quantize.")
        on_onnx = settings.backend in ("onnxruntime", "modelopt.onnx")
        if on_onnx != settings.model_path.lower().endswith(".onnx"):
            wanted = "an .onnx file (export it with `mask2former export`)" if on_onnx else "a .pth training checkpoint"
            raise SpecError(f"quantize.model_path='{settings.model_path}': quantize.backend={settings.backend} "
                            f"quantizes {wanted}.")
        evaluate, reason = _has_eval_data(cfg)
        if not evaluate:
            writer.write(RUNNING, f"metrics skipped: {reason}", verbosity=WARNING)
        if on_onnx:
            report = _quantize_onnx(cfg, settings, results_dir, evaluate)
        else:
            report = _quantize_checkpoint(cfg, settings, results_dir, evaluate)
        (Path(results_dir) / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        kpi = dict((report["metrics"] or {}).get("quantized") or {})
        kpi["size_ratio"] = report["size_ratio"]
        writer.write(SUCCESS, f"Quantized model stored at {report['quantized_model']} ({settings.backend}); size "
                              f"{report['size_bytes']['quantized'] / 2**20:.2f} MiB vs "
                              f"{report['size_bytes']['float'] / 2**20:.2f} MiB float", kpi=kpi)
    _print_report(report)
    return report


def _quantize_checkpoint(cfg: ExperimentConfig, settings: Any, results_dir: Path, evaluate: bool) -> dict[str, Any]:
    from mask2former.deploy.backends import TorchBackend
    from mask2former.training.checkpoint_io import load_model_from_checkpoint

    float_model, trained_spec = load_model_from_checkpoint(settings.model_path)
    float_bytes = _state_dict_bytes(float_model)
    num_classes = int(trained_spec["model"]["sem_seg_head"]["num_classes"])
    device = _torch_device(settings)
    float_metrics = _evaluate(TorchBackend(float_model, device=device), cfg, num_classes) if evaluate else None
    work_model, _ = load_model_from_checkpoint(settings.model_path)
    if settings.backend == "torchao":
        from mask2former.quantize.torchao_backend import QUANTIZED_NAME, load_quantized_model, quantize_checkpoint

        out_file = results_dir / QUANTIZED_NAME
        record = quantize_checkpoint(work_model, trained_spec, settings, out_file)
        quantized, _ = load_quantized_model(out_file)  # score what was saved, proving it loads
        quant_bytes = _state_dict_bytes(quantized)
    else:  # modelopt.pytorch
        from mask2former.quantize.calibration import calibration_batches
        from mask2former.quantize.modelopt_backend import TORCH_QUANTIZED_NAME, quantize_torch

        size = tuple(int(v) for v in (cfg.dataset.test.target_size or [cfg.export.input_height, cfg.export.input_width]))
        size = (size[0], size[-1])
        out_file = results_dir / TORCH_QUANTIZED_NAME
        record = quantize_torch(work_model, trained_spec, settings, calibration_batches(cfg, size), out_file, device)
        quantized = work_model
        quant_bytes = out_file.stat().st_size
    quant_metrics = _evaluate(TorchBackend(quantized, device=device), cfg, num_classes) if evaluate else None
    return _report(settings, out_file, record, float_bytes, quant_bytes, float_metrics, quant_metrics)


def _quantize_onnx(cfg: ExperimentConfig, settings: Any, results_dir: Path, evaluate: bool) -> dict[str, Any]:
    from mask2former.deploy.backends import OnnxRuntimeBackend
    from mask2former.quantize.calibration import calibration_batches, calibration_size
    from skillkit.errors import DataError

    source = Path(settings.model_path)
    if not source.is_file():
        raise DataError(f"quantize.model_path '{source}' does not exist.")
    float_backend = OnnxRuntimeBackend(source)
    if float_backend.input_size is None:
        raise DataError(f"'{source}' has no fixed input height/width; export it with `mask2former export`.")
    size = calibration_size(cfg, float_backend.input_size)
    num_classes = float_backend.num_classes or int(cfg.model.sem_seg_head.num_classes)
    float_metrics = _evaluate(float_backend, cfg, num_classes) if evaluate else None
    float_backend.close()
    batches = list(calibration_batches(cfg, size))
    if settings.backend == "onnxruntime":
        from mask2former.quantize.onnxruntime_backend import QUANTIZED_NAME, quantize_onnx
    else:
        from mask2former.quantize.modelopt_backend import ONNX_QUANTIZED_NAME as QUANTIZED_NAME
        from mask2former.quantize.modelopt_backend import quantize_onnx
    out_file = results_dir / QUANTIZED_NAME
    record = quantize_onnx(source, out_file, settings, batches)
    quant_backend = OnnxRuntimeBackend(out_file)  # proves the quantized graph loads
    quant_metrics = _evaluate(quant_backend, cfg, num_classes) if evaluate else None
    quant_backend.close()
    return _report(settings, out_file, record, source.stat().st_size, out_file.stat().st_size, float_metrics,
                   quant_metrics)


def _evaluate(backend: Any, cfg: ExperimentConfig, num_classes: int) -> dict[str, Any]:
    from mask2former.deploy.evaluate import evaluate_backend

    result = evaluate_backend(backend, cfg, num_classes=num_classes, with_loss=False)
    return {"split": result.split, "num_images": result.num_images, "metrics": result.metrics,
            "seconds_per_image": result.seconds / max(result.num_images, 1)}


def _report(settings: Any, out_file: Path, record: dict[str, Any], float_bytes: int, quant_bytes: int,
            float_eval: dict[str, Any] | None, quant_eval: dict[str, Any] | None) -> dict[str, Any]:
    metrics = None
    seconds_per_image = None
    if float_eval is not None and quant_eval is not None:
        seconds_per_image = {"float": float_eval["seconds_per_image"], "quantized": quant_eval["seconds_per_image"]}
        change = {name: (quant_eval["metrics"][name] - value)
                  for name, value in float_eval["metrics"].items()
                  if isinstance(value, (int, float)) and isinstance(quant_eval["metrics"].get(name), (int, float))}
        metrics = {"float": float_eval["metrics"], "quantized": quant_eval["metrics"], "change": change}
    return {
        "backend": settings.backend,
        "mode": settings.mode,
        "algorithm": settings.algorithm,
        "model_path": settings.model_path,
        "quantized_model": str(out_file),
        "quantization": record,
        "size_bytes": {"float": int(float_bytes), "quantized": int(quant_bytes)},
        "size_ratio": quant_bytes / float_bytes if float_bytes else None,
        "split": (float_eval or {}).get("split"),
        "num_images": (float_eval or {}).get("num_images"),
        "metrics": metrics,
        "seconds_per_image": seconds_per_image,
    }


def _print_report(report: Mapping[str, Any]) -> None:
    from mask2former.actions.common import print_metrics

    sizes = report["size_bytes"]
    print(f"{report['backend']}: {sizes['float'] / 2**20:.2f} MiB -> {sizes['quantized'] / 2**20:.2f} MiB "
          f"(x{report['size_ratio']:.3f}); quantized model at {report['quantized_model']}")
    if report["metrics"] is not None:
        print_metrics(f"float vs quantized on dataset.{report['split']} ({report['num_images']} images)",
                      report["metrics"]["quantized"], baseline=report["metrics"]["float"])


def _handle(args: argparse.Namespace) -> None:
    from mask2former.actions.common import load_action_config

    cfg, spec = load_action_config(args, "quantize")
    run_quantize(cfg, spec)


def register(subparsers: argparse._SubParsersAction) -> None:
    from mask2former.actions.common import add_spec_arguments

    parser = subparsers.add_parser("quantize", help="quantize a checkpoint (torchao) or an ONNX file (onnxruntime, "
                                                    "modelopt) and report size and metric change")
    add_spec_arguments(parser)
    parser.set_defaults(func=cli_handler(_handle))

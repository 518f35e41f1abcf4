"""`mask2former export -e spec.yaml [a.b=c ...]`: a training checkpoint -> a verified float32 ONNX graph.

* Architecture and weights come from `export.checkpoint` (the spec stored in it rebuilds the model);
  what the graph computes after the network comes from the export spec: `model.mode` and
  `model.test_topk_per_image` (instance).
* `export.input_height` x `input_width`, `export.batch_size` (-1: dynamic batch), `export.opset_version`,
  `export.verbose`, `export.on_cpu` / `export.gpu_id` (export device; CPU when no GPU is visible).
* Writes `export.onnx_file`, `results_dir/export.json` (outputs with shapes and dtypes, graph checks,
  ORT-vs-PyTorch differences) and `results_dir/status.json` lines. Fails (FAILURE line, non-zero exit) when
  the graph is not float32 or ONNX Runtime differs from PyTorch beyond the tolerance.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former.actions.status import cli_handler, recorded

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig

EXPORT_REPORT = "export.json"


def export_device(cfg: ExperimentConfig):
    """cuda:<export.gpu_id> unless export.on_cpu or no GPU is visible."""
    import torch

    if cfg.export.on_cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(cfg.export.gpu_id))


def run_export(cfg: ExperimentConfig, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Export `cfg.export.checkpoint`; returns the export.json content (also written to disk)."""
    from mask2former.actions.common import action_results_dir
    from skillkit.status.writer import RUNNING, SUCCESS, WARNING

    results_dir = action_results_dir(cfg, "export")
    with recorded(results_dir, f"Exporting {cfg.export.checkpoint} to {cfg.export.onnx_file}") as writer:
        from mask2former.export.onnx_export import ExportSettings, export_onnx
        from mask2former.training.checkpoint_io import load_model_from_checkpoint
        from skillkit.errors import SpecError

        if not cfg.export.onnx_file or cfg.export.onnx_file == "???":
            raise SpecError("export.onnx_file is empty: set it to the .onnx path to write.")
        if int(cfg.export.input_channel) != 3:
            raise SpecError(f"export.input_channel={cfg.export.input_channel}: the model takes RGB images (3).")
        settings = ExportSettings(mode=cfg.model.mode, height=int(cfg.export.input_height),
                                  width=int(cfg.export.input_width), batch_size=int(cfg.export.batch_size),
                                  opset=int(cfg.export.opset_version), topk=int(cfg.model.test_topk_per_image),
                                  verbose=bool(cfg.export.verbose))
        model, trained_spec = load_model_from_checkpoint(cfg.export.checkpoint)
        trained_classes = int(trained_spec["model"]["sem_seg_head"]["num_classes"])
        if int(cfg.model.sem_seg_head.num_classes) != trained_classes:
            writer.write(RUNNING, f"model.sem_seg_head.num_classes={cfg.model.sem_seg_head.num_classes} in the export "
                                  f"spec differs from the checkpoint's {trained_classes}; the checkpoint's "
                                  "architecture is exported.", verbosity=WARNING)
        started = time.perf_counter()
        result = export_onnx(
            model, cfg.export.onnx_file, settings, device=export_device(cfg),
            metadata={"checkpoint": str(cfg.export.checkpoint),
                      "object_mask_threshold": float(cfg.model.object_mask_threshold),
                      "overlap_threshold": float(cfg.model.overlap_threshold),
                      "pixel_mean": list(trained_spec["dataset"]["pixel_mean"]),
                      "pixel_std": list(trained_spec["dataset"]["pixel_std"])},
        )
        elapsed = time.perf_counter() - started
        onnx_file = Path(result.onnx_file)
        report = {
            "checkpoint": str(cfg.export.checkpoint),
            "onnx_file": str(onnx_file),
            "size_bytes": onnx_file.stat().st_size,
            "export_seconds": round(elapsed, 3),
            "mode": settings.mode,
            "input": {"name": result.metadata["input_name"], "shape": result.metadata["input_shape"],
                      "dtype": "float32"},
            "outputs": result.metadata["outputs"],
            "raw_outputs": result.metadata["raw_outputs"],
            "dynamic_batch": settings.dynamic_batch,
            "opset": settings.opset,
            "graph": {"float64_tensors": list(result.graph.float64),
                      "grid_sample_grid_dtypes": sorted({d for _, d in result.graph.grid_sample_grids}),
                      "grid_sample_nodes": len(result.graph.grid_sample_grids),
                      "op_types": list(result.graph.op_types)},
            "verification": result.verification.as_dict(),
        }
        (results_dir / EXPORT_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        worst = max(result.verification.max_abs_diff.values(), default=0.0)
        writer.write(SUCCESS, f"ONNX file stored at {onnx_file} ({settings.mode}, "
                              f"{settings.height}x{settings.width}, batch "
                              f"{'dynamic' if settings.dynamic_batch else settings.batch_size}); ONNX Runtime vs "
                              f"PyTorch max abs difference {worst:.3g} (tolerance {result.verification.tolerance:g})",
                     kpi={"max_abs_diff": worst, "size_mb": report["size_bytes"] / 2**20})
    listing = ", ".join(f"{name} {info['shape']} {info['dtype']}" for name, info in report["outputs"].items())
    print(f"ONNX file stored at {onnx_file}: outputs {listing}; ORT vs PyTorch max abs difference {worst:.3g}")
    return report


def _handle(args: argparse.Namespace) -> None:
    from mask2former.actions.common import load_action_config

    cfg, spec = load_action_config(args, "export")
    run_export(cfg, spec)


def register(subparsers: argparse._SubParsersAction) -> None:
    from mask2former.actions.common import add_spec_arguments

    parser = subparsers.add_parser("export", help="export a checkpoint to a verified float32 ONNX graph")
    add_spec_arguments(parser)
    parser.set_defaults(func=cli_handler(_handle))

"""`mask2former gen_trt_engine -e spec.yaml`: an exported ONNX graph -> a TensorRT engine (FP32 or FP16).

The settings, their checks and the builder are `mask2former.deploy.trt_engine` (see its docstring); this
action adds the results folder, the status.json lines and the CLI. Without the `tensorrt` package or a GPU
it stops with a message pointing to the ONNX Runtime path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former.actions.status import cli_handler, recorded

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig


def run_gen_trt_engine(cfg: ExperimentConfig) -> dict[str, Any]:
    """Build `gen_trt_engine.trt_engine` from `gen_trt_engine.onnx_file`; returns what was built."""
    from mask2former.actions.common import action_results_dir
    from mask2former.deploy.trt_engine import build_engine, check_onnx_batch, engine_settings
    from skillkit.errors import SpecError
    from skillkit.status.writer import SUCCESS

    results_dir = action_results_dir(cfg, "gen_trt_engine")
    section = cfg.gen_trt_engine
    with recorded(results_dir, f"Building a TensorRT engine from {section.onnx_file}") as writer:
        settings = engine_settings(cfg)
        if not section.trt_engine or section.trt_engine == "???":
            raise SpecError("gen_trt_engine.trt_engine is empty: set it to the engine file to write.")
        check_onnx_batch(Path(section.onnx_file), settings)
        cache = settings.timing_cache or str(results_dir / "timing.cache")
        info = build_engine(section.onnx_file, section.trt_engine, settings, timing_cache=cache)
        writer.write(SUCCESS, f"TensorRT {settings.data_type} engine stored at {section.trt_engine} "
                              f"(batch profile {settings.min_batch}/{settings.opt_batch}/{settings.max_batch}, "
                              f"built in {info['build_seconds']:.1f}s)",
                     kpi={"build_seconds": info["build_seconds"],
                          "size_mb": Path(section.trt_engine).stat().st_size / 2**20})
    print(f"TensorRT engine stored at {section.trt_engine}")
    return info


def _handle(args: argparse.Namespace) -> None:
    from mask2former.actions.common import load_action_config

    cfg, _ = load_action_config(args, "gen_trt_engine")
    run_gen_trt_engine(cfg)


def register(subparsers: argparse._SubParsersAction) -> None:
    from mask2former.actions.common import add_spec_arguments

    parser = subparsers.add_parser("gen_trt_engine", help="build a TensorRT FP32/FP16 engine from an exported ONNX file")
    add_spec_arguments(parser)
    parser.set_defaults(func=cli_handler(_handle))

"""Inference latency and throughput of one Mask2Former config: PyTorch eager, ONNX Runtime and TensorRT side by side.

    python benchmarks/infer_latency.py [--quick] [--spec SPEC.yaml] [--checkpoint CKPT.pth] [--override KEY=VALUE]
        [--mode semantic|instance|panoptic] [--height 544] [--width 960] [--batch-size 1] [--iters 20]
        [--warmup 3] [--device auto|cpu|cuda] [--threads N] [--runtime pytorch --runtime onnxruntime
        --runtime tensorrt-fp32 --runtime tensorrt-fp16] [--out benchmarks/results/infer_latency.json]

The model is `--checkpoint` (a training checkpoint), or the model section of `--spec` (default: the export
template, i.e. Swin-T, 100 queries, 200 classes) with random weights: latency does not depend on the
weights. Every runtime runs the same work, the exported graph: network + the mode's post-processing at
`--height` x `--width` (TAO's outputs plus the raw logits), from a host batch to host outputs. The ONNX file
comes from this project's exporter (`mask2former.export.export_onnx`, verified against PyTorch; the max abs
difference is reported). TensorRT rows need the `tensorrt` package and a GPU (they are reported as skipped
otherwise); ONNX Runtime uses its CUDA provider when installed and `--device` is cuda.

Latency: per batch, median and 90th percentile over `--iters` timed calls after `--warmup` calls; throughput:
images per second from the mean. Prints a rich table and writes JSON; `--quick` is the tiny model at 64 px
with 2 timed calls (what CI runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("pytorch", "onnxruntime", "tensorrt-fp32", "tensorrt-fp16")


def _build_model(args: argparse.Namespace):
    import torch

    from mask2former.config import config_from_dict
    from mask2former.model import build_model
    from skillkit.spec import apply_overrides, load_spec

    if args.checkpoint:
        from mask2former.training.checkpoint_io import load_model_from_checkpoint

        model, spec = load_model_from_checkpoint(args.checkpoint)
        return model, spec
    if args.quick and not args.spec:
        from mask2former.config import config_to_dict
        from mask2former.model.tiny import tiny_config

        spec = config_to_dict(tiny_config(6))
    else:
        spec = load_spec(args.spec, action="export", check_mandatory=False, check_classes=False)
    spec = apply_overrides(spec, args.override or [])
    cfg = config_from_dict(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(cfg, load_pretrained=False)
    return model.eval(), spec


def _time(backend: Any, images: Any, *, iters: int, warmup: int) -> dict[str, float]:
    sync = getattr(backend, "synchronize", lambda: None)
    for _ in range(warmup):
        backend.outputs(images)
    sync()
    samples = []
    for _ in range(iters):
        started = time.perf_counter()
        backend.outputs(images)
        sync()
        samples.append((time.perf_counter() - started) * 1000.0)
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    mean = statistics.fmean(samples)
    return {"latency_ms_median": statistics.median(samples), "latency_ms_p90": p90, "latency_ms_mean": mean,
            "throughput_img_s": images.shape[0] / (mean / 1000.0), "iters": iters}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mask2former.deploy.backends import OnnxRuntimeBackend, TorchBackend
    from mask2former.export.onnx_export import ExportSettings, export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    model, spec = _build_model(args)
    mode = args.mode or spec["model"]["mode"]
    size = (args.height, args.width)
    images = torch.rand(args.batch_size, 3, *size, generator=torch.Generator().manual_seed(0))
    wanted = args.runtime or list(RUNTIMES)
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "config": {"mode": mode, "height": size[0], "width": size[1], "batch_size": args.batch_size,
                   "num_classes": int(model.num_classes), "num_queries": int(model.num_queries),
                   "parameters": sum(p.numel() for p in model.parameters()), "device": device,
                   "checkpoint": args.checkpoint or None, "quick": bool(args.quick)},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "machine": platform.machine(), "threads": torch.get_num_threads()},
        "rows": rows,
    }
    with tempfile.TemporaryDirectory() as scratch:
        onnx_file = Path(scratch) / "model.onnx"
        export = None
        if any(r != "pytorch" for r in wanted):
            started = time.perf_counter()
            export = export_onnx(model, onnx_file, ExportSettings(mode=mode, height=size[0], width=size[1],
                                                                   batch_size=-1, topk=int(spec["model"]["test_topk_per_image"])),
                                 device="cpu")
            report["export"] = {"seconds": time.perf_counter() - started, "size_mb": onnx_file.stat().st_size / 2**20,
                                "max_abs_diff": max(export.verification.max_abs_diff.values())}
        for runtime in wanted:
            row: dict[str, Any] = {"runtime": runtime}
            try:
                if runtime == "pytorch":
                    backend = TorchBackend(model, device=device, mode=mode, output_size=size,
                                           topk=int(spec["model"]["test_topk_per_image"]))
                    row["detail"] = f"eager, {device}"
                elif runtime == "onnxruntime":
                    import onnxruntime as ort

                    providers = ["CPUExecutionProvider"]
                    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                        providers.insert(0, "CUDAExecutionProvider")
                    backend = OnnxRuntimeBackend(onnx_file, providers=providers, intra_op_threads=args.threads or None)
                    row["detail"] = f"onnxruntime {ort.__version__}, {backend.providers[0]}"
                else:
                    backend = _tensorrt_backend(onnx_file, Path(scratch), runtime, args, row)
                    if backend is None:
                        rows.append(row)
                        continue
                row.update(_time(backend, images, iters=args.iters, warmup=args.warmup))
                backend.close()
            except Exception as error:  # noqa: BLE001 - one runtime failing must not hide the others
                row["skipped"] = f"{type(error).__name__}: {error}"
            rows.append(row)
    return report


def _tensorrt_backend(onnx_file: Path, scratch: Path, runtime: str, args: argparse.Namespace, row: dict[str, Any]):
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is None:
        row["skipped"] = "the tensorrt package is not installed"
        return None
    if not torch.cuda.is_available():
        row["skipped"] = "no CUDA GPU"
        return None
    from mask2former.deploy.backends import TensorRTBackend
    from mask2former.deploy.trt_engine import EngineSettings, build_engine

    precision = runtime.split("-")[1].upper()
    settings = EngineSettings(data_type=precision, workspace_mib=4096, min_batch=1, opt_batch=args.batch_size,
                              max_batch=max(args.batch_size, 1))
    engine = scratch / f"model_{precision.lower()}.engine"
    info = build_engine(onnx_file, engine, settings, timing_cache=scratch / "timing.cache")
    row["detail"] = f"TensorRT {info['tensorrt_version']} {precision}, built in {info['build_seconds']:.1f}s"
    return TensorRTBackend(engine)


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    config = report["config"]
    title = (f"Inference latency: {config['mode']} {config['height']}x{config['width']}, batch {config['batch_size']}, "
             f"{config['num_queries']} queries, {config['num_classes']} classes ({config['parameters'] / 1e6:.1f}M params)")
    table = Table(title=title)
    for column in ("runtime", "median ms", "p90 ms", "images/s", "detail"):
        table.add_column(column, justify="left" if column in ("runtime", "detail") else "right")
    for row in report["rows"]:
        if "skipped" in row:
            table.add_row(row["runtime"], "-", "-", "-", f"skipped: {row['skipped']}")
            continue
        table.add_row(row["runtime"], f"{row['latency_ms_median']:.2f}", f"{row['latency_ms_p90']:.2f}",
                      f"{row['throughput_img_s']:.2f}", row.get("detail", ""))
    Console().print(table)
    if "export" in report:
        print(f"ONNX export: {report['export']['seconds']:.1f}s, {report['export']['size_mb']:.1f} MiB, "
              f"ORT vs PyTorch max abs difference {report['export']['max_abs_diff']:.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 64 px, 2 timed calls (CI)")
    parser.add_argument("--spec", help="TAO-style spec whose model section is benchmarked (default: export template)")
    parser.add_argument("--checkpoint", help="training checkpoint to benchmark instead of a spec")
    parser.add_argument("--override", action="append", metavar="KEY=VALUE", help="dotted spec override (repeatable)")
    parser.add_argument("--mode", choices=("semantic", "instance", "panoptic"), help="default: the spec's model.mode")
    parser.add_argument("--height", type=int, help="input height (default 544; 64 with --quick)")
    parser.add_argument("--width", type=int, help="input width (default 960; 64 with --quick)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, help="timed calls (default 20; 2 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 3; 1 with --quick)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for torch and ONNX Runtime (0: default)")
    parser.add_argument("--runtime", action="append", choices=RUNTIMES, help="runtimes to time (default: all)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "infer_latency.json"))
    args = parser.parse_args(argv)
    args.height = args.height or (64 if args.quick else 544)
    args.width = args.width or (64 if args.quick else 960)
    args.iters = args.iters or (2 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    report = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print_table(report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())

"""Checks and summarises what `benchmarks/gpu_check.sh` produced: one table, `gpu_check.json`, exit status.

    python benchmarks/gpu_check_report.py --out DIR [--limit-s 480] [--dry-run]

Checks (each a row with its verdict):
- every step of the script exited 0, and the whole run took at most `--limit-s` seconds (not held in a
  dry run, whose CPU timings say nothing about the GPU);
- GPU tests: on a GPU machine none failed and none was skipped (a skip there means the GPU was not used);
  in a dry run they were collected;
- throughput: every (implementation, precision) row measured, with ratios ours / transformers per precision;
  on a GPU machine the rows were measured on CUDA;
- deploy: the deploy evaluation ran on the expected backend (TensorRT; ONNX Runtime in a dry run) and its
  metric matches the PyTorch evaluation of the same promoted checkpoint (best.json) within the tolerance of
  the engine's precision (fp16 TensorRT: 0.05 mIoU; fp32 ONNX Runtime: 0.01).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def _steps(out: Path) -> tuple[dict[str, tuple[int, int]], int | None]:
    steps: dict[str, tuple[int, int]] = {}
    total = None
    for line in (out / "steps.txt").read_text().splitlines() if (out / "steps.txt").is_file() else []:
        parts = line.split()
        if parts[0] == "total":
            total = int(parts[1])
        else:
            steps[parts[0]] = (int(parts[1]), int(parts[2]))
    return steps, total


def _gpu_tests(out: Path, dry_run: bool, status: int | None) -> tuple[bool, str]:
    if dry_run:
        log = (out / "gpu_tests.log").read_text() if (out / "gpu_tests.log").is_file() else ""
        collected = [line for line in log.splitlines() if "::" in line]
        return bool(collected) and status == 0, (f"{len(collected)} GPU-marked tests collected (not run: dry run)"
                                                 + ("" if status == 0 else f"; collection exited {status}"))
    report = out / "gpu_tests.xml"
    if not report.is_file():
        return False, "no junit report"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    ok = counts["tests"] > 0 and counts["failures"] == counts["errors"] == counts["skipped"] == 0
    return ok, ", ".join(f"{value} {key}" for key, value in counts.items())


def _throughput(out: Path, dry_run: bool) -> tuple[bool, str, dict[str, Any]]:
    path = out / "train_throughput.json"
    if not path.is_file():
        return False, "no train_throughput.json", {}
    report = json.loads(path.read_text())
    rows = report["results"]
    errors = [f"{r['impl']}/{r.get('precision')}: {r['error']}" for r in rows if "error" in r]
    device_ok = dry_run or report["options"]["device"] == "cuda"
    expected = {(impl, precision) for impl in ("ours", "transformers") for precision in ("fp32", "bf16")}
    measured = {(r["impl"], r.get("precision")) for r in rows if "error" not in r}
    lines = [f"{r['impl']} {r['precision']}: {r['images_per_second']:.2f} img/s, peak {r['peak_memory_mib']:.0f} MiB"
             for r in rows if "error" not in r]
    lines += [f"{x['precision']}: ours/transformers {x['images_per_second_ours_over_transformers']:.2f}x img/s"
              for x in report.get("ratios", [])]
    ok = not errors and device_ok and measured == expected and len(report.get("ratios", [])) == 2
    return ok, "; ".join(errors or lines), {"results": rows, "ratios": report.get("ratios", []),
                                            "options": report["options"], "machine": report.get("machine")}


def _deploy(out: Path, dry_run: bool) -> tuple[bool, str, dict[str, Any]]:
    best_dir = out / "ws" / "gpu_check" / "best"
    best_file = best_dir / "best.json"
    # promotion's deploy specs: TensorRT results in deploy/evaluate, ONNX Runtime ones in deploy/evaluate_onnxruntime
    evaluation = best_dir / "deploy" / ("evaluate_onnxruntime" if dry_run else "evaluate") / "evaluation.json"
    if not best_file.is_file() or not evaluation.is_file():
        return False, f"missing {best_file.name if not best_file.is_file() else evaluation}", {}
    best = json.loads(best_file.read_text())
    report = json.loads(evaluation.read_text())
    metric = "mIoU"
    pytorch = (best.get("evaluation") or {}).get("final")
    deployed = (report.get("metrics") or {}).get(metric)
    backend = report.get("backend")
    expected_backend = "onnxruntime" if dry_run else "tensorrt"
    tolerance = 0.01 if dry_run else 0.05
    ok = (backend == expected_backend and isinstance(pytorch, (int, float)) and isinstance(deployed, (int, float))
          and abs(deployed - pytorch) <= tolerance)
    detail = f"{backend}: {metric} {deployed} vs PyTorch {pytorch} (tolerance {tolerance})"
    return ok, detail, {"backend": backend, "metric": metric, "deployed": deployed, "pytorch": pytorch,
                        "tolerance": tolerance}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit-s", type=int, default=480)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    steps, total = _steps(out)
    failed_steps = [name for name, (status, _) in steps.items() if status != 0]
    checks: list[tuple[str, bool, str]] = [
        ("steps", not failed_steps and bool(steps),
         "all exited 0" if not failed_steps else f"failed: {', '.join(failed_steps)} (see their .log files)"),
        # The 8-minute budget is for one GPU; a dry run on a CPU is only timed.
        ("time", total is not None and (args.dry_run or total <= args.limit_s),
         f"{total} s" + (" (dry run: not held to the limit)" if args.dry_run else f" of at most {args.limit_s} s")),
    ]
    ok, detail = _gpu_tests(out, args.dry_run, steps.get("gpu_tests", (None, 0))[0])
    checks.append(("gpu tests", ok, detail))
    ok, detail, throughput = _throughput(out, args.dry_run)
    checks.append(("throughput", ok, detail))
    ok, detail, deploy = _deploy(out, args.dry_run)
    checks.append(("deploy", ok, detail))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GPU check{' (dry run on CPU)' if args.dry_run else ''}: {out}")
    for column in ("check", "verdict", "detail", "seconds"):
        table.add_column(column, overflow="fold")
    seconds = {"gpu tests": "gpu_tests", "throughput": "throughput", "deploy": "deploy_evaluate"}
    for name, passed, detail in checks:
        step = steps.get(seconds.get(name, ""), (0, ""))[1]
        table.add_row(name, "ok" if passed else "FAILED", detail, str(step))
    console = Console() if Console().is_terminal else Console(width=160)
    console.print(table)
    report = {"benchmark": "gpu_check", "dry_run": args.dry_run, "total_s": total,
              "steps": {name: {"status": s, "seconds": t} for name, (s, t) in steps.items()},
              "checks": [{"check": name, "ok": passed, "detail": detail} for name, passed, detail in checks],
              "throughput": throughput, "deploy": deploy}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'gpu_check.json'}")
    return 0 if all(passed for _, passed, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

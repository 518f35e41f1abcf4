"""`benchmarks/gpu_check.sh` cannot run its GPU parts here; what can be checked on a CPU is checked: the
script parses, its report passes a good run and names every kind of failure, and the throughput benchmark
refuses to measure the CPU when the check asks for CUDA. (`bash benchmarks/gpu_check.sh --dry-run` runs
every CPU-possible step end to end: 3 to 8 minutes on two cores, so it is run by hand, not in CI.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _outputs(out: Path, *, skipped: int = 0, deployed: float = 0.40, backend: str = "tensorrt",
             device: str = "cuda", failed_step: str | None = None, total: int = 300) -> Path:
    steps = ["gpu_info", "cuda", "gpu_tests", "throughput", "data", "sweep", "export", "trt_engine", "deploy_evaluate"]
    (out / "steps.txt").write_text("".join(f"{s} {1 if s == failed_step else 0} 10\n" for s in steps) + f"total {total}\n")
    (out / "gpu_tests.xml").write_text(f'<testsuites><testsuite tests="6" failures="0" errors="0" skipped="{skipped}"/></testsuites>')
    rows = [{"impl": impl, "precision": p, "images_per_second": 10.0, "peak_memory_mib": 900.0}
            for p in ("fp32", "bf16") for impl in ("ours", "transformers")]
    ratios = [{"precision": p, "images_per_second_ours_over_transformers": 1.0, "peak_memory_ours_over_transformers": 1.0}
              for p in ("fp32", "bf16")]
    (out / "train_throughput.json").write_text(json.dumps({"options": {"device": device}, "results": rows,
                                                           "ratios": ratios}))
    best = out / "ws" / "gpu_check" / "best"
    (best / "deploy" / "evaluate").mkdir(parents=True)
    (best / "best.json").write_text(json.dumps({"evaluation": {"final": 0.42}}))
    (best / "deploy" / "evaluate" / "evaluation.json").write_text(json.dumps({"backend": backend,
                                                                            "metrics": {"mIoU": deployed}}))
    return out


def _report(out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check_report.py"), "--out", str(out), *extra],
                            capture_output=True, text=True, timeout=120)
    report = json.loads((out / "gpu_check.json").read_text())
    return result.returncode, {c["check"]: c["ok"] for c in report["checks"]}


def test_the_report_passes_a_good_gpu_run(tmp_path: Path) -> None:
    code, checks = _report(_outputs(tmp_path))
    assert code == 0 and all(checks.values()), checks


@pytest.mark.parametrize("changes, failing", [
    ({"skipped": 1}, "gpu tests"),  # a skipped GPU test on a GPU machine means the GPU was not used
    ({"deployed": 0.30}, "deploy"),  # the engine's metric is not the PyTorch one
    ({"backend": "onnxruntime"}, "deploy"),  # TensorRT was not used
    ({"device": "cpu"}, "throughput"),  # measured on the CPU
    ({"failed_step": "export"}, "steps"),
    ({"total": 600}, "time"),  # over the 8-minute budget
])
def test_the_report_names_each_failure(tmp_path: Path, changes: dict[str, Any], failing: str) -> None:
    code, checks = _report(_outputs(tmp_path, **changes))
    assert code == 1 and [name for name, ok in checks.items() if not ok] == [failing], checks


def test_throughput_refuses_the_cpu_when_cuda_is_required(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--quick",
                             "--require-cuda", "--out", str(tmp_path / "t.json")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0 and "--require-cuda: no CUDA device is available" in result.stderr
    assert not (tmp_path / "t.json").exists()

"""benchmarks/search_efficiency/merge.py: two runs of the same protocol become one results file; runs that do
not share the protocol (another q*, B, suite set or TAO Hyperband row) are refused with one clear line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _row(speedup: float, seeds: int = 20) -> dict[str, Any]:
    return {"seeds": seeds, "median_epochs_to_target": 2340 / speedup, "speedup": speedup, "ci_low": speedup * 0.8,
            "ci_high": speedup * 1.2, "success_rate": 1.0, "auc": 0.1}


def _run(command: str, rows: dict[str, float], targets: tuple[float, float] = (0.17, 0.99)) -> dict[str, Any]:
    suites = {name: {"target": q, "budget_epochs": 2340,
                     "algorithms": {"tao_hyperband": _row(1.0), **{a: _row(s) for a, s in rows.items()}}}
              for name, q in zip(("mfh3_good", "mfh6_good"), targets, strict=True)}
    geo = {a: {"suites": 2, "speedup": s, "ci_low": s * 0.9, "ci_high": s * 1.1} for a, s in rows.items()}
    return {"command": command, "default_algorithm": "ours:mfbo", "wall_time_s": 60.0, "suites": suites,
            "geometric_mean": {"tao_hyperband": {"suites": 2, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0}, **geo}}


def _cli(tmp_path: Path, base: dict[str, Any], added: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "added.json").write_text(json.dumps(added))
    return subprocess.run([sys.executable, "-m", "benchmarks.search_efficiency.merge", str(tmp_path / "base.json"),
                           str(tmp_path / "added.json"), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_added_algorithms_join_the_base_run(tmp_path: Path) -> None:
    base = _run("python -m benchmarks.search_efficiency --algorithms tao_hyperband,ours:mfbo", {"ours:mfbo": 3.4})
    added = _run("python -m benchmarks.search_efficiency --algorithms tao_hyperband,tao_bayesian",
                 {"tao_bayesian": 3.2, "tao_bohb": 1.5})
    added["suites"]["mfh6_good"]["algorithms"]["tao_hyperband"]["auc"] = 0.1004  # another run's AUC scale
    done = _cli(tmp_path, base, added)
    assert done.returncode == 0, done.stderr
    merged = json.loads((tmp_path / "out" / "search_efficiency.json").read_text())
    for name, suite in merged["suites"].items():
        assert set(suite["algorithms"]) == {"tao_hyperband", "ours:mfbo", "tao_bayesian", "tao_bohb"}
        assert suite["algorithms"]["ours:mfbo"] == base["suites"][name]["algorithms"]["ours:mfbo"]
        assert suite["algorithms"]["tao_bayesian"] == added["suites"][name]["algorithms"]["tao_bayesian"]
    assert merged["geometric_mean"]["tao_bohb"] == added["geometric_mean"]["tao_bohb"]
    assert merged["geometric_mean"]["ours:mfbo"] == base["geometric_mean"]["ours:mfbo"]
    assert merged["command"].startswith(base["command"] + " && " + added["command"] + " && python -m ")
    assert merged["wall_time_s"] == 120.0 and len(merged["merged_from"]) == 2
    assert merged["suites"]["mfh6_good"]["auc_reference"] == {"base": 0.1, "added": 0.1004}
    table = (tmp_path / "out" / "search_efficiency.md").read_text()
    assert "| tao_bayesian | 20 |" in table and "| ours:mfbo | 2 | 3.40x |" in table


def test_runs_of_another_protocol_are_refused_with_one_line(tmp_path: Path) -> None:
    base = _run("base", {"ours:mfbo": 3.4})
    other_target = _run("added", {"tao_bayesian": 3.2}, targets=(0.18, 0.99))
    other_reference = copy.deepcopy(_run("added", {"tao_bayesian": 3.2}))
    other_reference["suites"]["mfh6_good"]["algorithms"]["tao_hyperband"]["seeds"] = 5
    fewer_suites = _run("added", {"tao_bayesian": 3.2})
    del fewer_suites["suites"]["mfh6_good"]
    other_auc_scale = _run("added", {"tao_bayesian": 3.2})
    other_auc_scale["suites"]["mfh3_good"]["algorithms"]["tao_hyperband"]["auc"] = 0.11
    for added, expected in ((other_target, "suite mfh3_good: target q* 0.18 in the added run, 0.17 in the base run"),
                            (other_reference, "suite mfh6_good: the two runs' tao_hyperband rows differ (seeds)"),
                            (other_auc_scale, "suite mfh3_good: tao_hyperband's AUC is 0.11 in the added run and 0.1"),
                            (fewer_suites, "the added run lacks suite(s) mfh6_good")):
        done = _cli(tmp_path, base, added)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written

"""CLI start-up: wall time of `hpo --help` and `mask2former --help` (and a few first commands), this tree
against a baseline git revision, measured in the same run on the same machine.

    python benchmarks/cli_startup.py                      # baseline: the revision before lazy imports (e2f9b4d)
    python benchmarks/cli_startup.py --baseline-ref main --repeats 7
    python benchmarks/cli_startup.py --quick              # 1 repeat, no baseline: the tiny form CI runs

The baseline revision is extracted with `git archive` into a temporary folder and run with the same Python
(so the same installed libraries); only the project's own code differs. Each command runs in a fresh
process, alternating between the trees so background load hits both alike; the median is reported. Prints a
rich table and writes JSON (default benchmarks/results/cli_startup.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "e2f9b4d"  # main just before the CLIs imported only the command being run
COMMANDS = {
    "hpo --help": ["-m", "hpo.cli", "--help"],
    "mask2former --help": ["-m", "mask2former.cli", "--help"],
    "hpo space --help": ["-m", "hpo.cli", "space", "--help"],
    "mask2former dataset --help": ["-m", "mask2former.cli", "dataset", "--help"],
}


def extract(ref: str, into: Path) -> Path:
    """The tree of `ref` (tracked files only) under `into`."""
    archive = into / "tree.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", ref], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def time_once(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat of this tree only")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cli_startup.json"))
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    trees = {"this tree": REPO}
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        if not args.quick:
            trees[f"baseline {args.baseline_ref}"] = extract(args.baseline_ref, Path(tmp))
        # Warm the file cache (and .pyc files of the installed libraries) once per tree.
        for tree in trees.values():
            for command in COMMANDS.values():
                time_once(tree, command)
        samples: dict[str, dict[str, list[float]]] = {name: {c: [] for c in COMMANDS} for name in trees}
        for _ in range(repeats):
            for command, command_args in COMMANDS.items():
                for name, tree in trees.items():
                    samples[name][command].append(time_once(tree, command_args))
    medians = {name: {c: statistics.median(v) for c, v in per.items()} for name, per in samples.items()}
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "repeats": repeats, "baseline_ref": None if args.quick else args.baseline_ref,
        "median_s": medians, "samples_s": samples,
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"CLI start-up, median of {repeats} (s)")
    table.add_column("command")
    for name in trees:
        table.add_column(name, justify="right")
    if len(trees) == 2:
        table.add_column("speed-up", justify="right")
    for command in COMMANDS:
        row = [f"{medians[name][command]:.2f}" for name in trees]
        if len(trees) == 2:
            baseline = medians[list(trees)[1]][command]
            row.append(f"{baseline / medians['this tree'][command]:.1f}x")
        table.add_row(command, *row)
    Console().print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

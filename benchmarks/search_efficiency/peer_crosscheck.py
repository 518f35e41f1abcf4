"""What the peer cross-checks share (`ray_crosscheck.py`: Ray Tune's Tuner; `syne_crosscheck.py`: Syne Tune's
Tuner): comparing the simulator's trials with the peer's own run trial by trial, the result document, and the
command line. Each module supplies the two sides; this one owns what "identical" means (same number of trials,
the same configuration to 1e-12 and the same epochs for each), so the two checks cannot drift apart."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Trials = list[dict[str, Any]]


def compare(peer: str, key: str, algorithm: str, suite_name: str, seed: int, trials: int,
            sim: Trials, other: Trials) -> dict[str, Any]:
    """The cross-check result of simulated trials `sim` against the peer's `other` ({trial, config, epochs}
    each, in creation order); `peer` names the peer in messages, `key` its side in the result."""
    problems = []
    if len(sim) != len(other):
        problems.append(f"{len(sim)} simulated trials, {len(other)} in {peer}")
    for s, r in zip(sim, other):
        same_config = s["config"].keys() == r["config"].keys() and all(
            abs(float(s["config"][k]) - float(r["config"][k])) < 1e-12 for k in s["config"])
        if not same_config or s["epochs"] != r["epochs"]:
            problems.append(f"trial {s['trial']}: simulator {s['epochs']} epochs, {peer} {r['epochs']} epochs"
                            + ("" if same_config else " (different configurations)"))
    prefix = key.split("_")[0]
    return {"algorithm": f"{prefix}:{algorithm}", "suite": suite_name, "seed": seed, "trials": trials,
            "identical": not problems, "problems": problems,
            "epochs": {"simulator": sum(s["epochs"] for s in sim), key: sum(r["epochs"] for r in other)},
            "simulator": sim, key: other}


def main(argv: Sequence[str] | None, *, prog: str, description: str | None, algorithms: tuple[str, ...],
         default_algorithm: str, default_trials: int,
         crosscheck: Callable[[str, str, int, int, Path], dict[str, Any]]) -> int:
    """`python -m <prog> --algorithm A --suite S --seed N --trials T [--out FILE]`: exit 0 when identical."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithm", default=default_algorithm, choices=algorithms)
    parser.add_argument("--suite", default="mfh3_good@9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=default_trials)
    parser.add_argument("--out", help="write the result JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"{prog.rsplit('.', 1)[-1]}-") as folder:
        result = crosscheck(args.algorithm, args.suite, args.seed, args.trials, Path(folder))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("algorithm", "suite", "trials", "identical", "problems", "epochs")}))
    return 0 if result["identical"] else 1

"""`python -m benchmarks.search_efficiency.merge BASE.json ADDED.json --out DIR`: one results file from two runs
of the same protocol that ran different algorithms (e.g. TAO's slow Bayesian and BOHB brains run on their own).

Why this is sound: an algorithm's speed-up, CI, median E and success rate depend only on its own sweeps and on
the suite's target q*, which is TAO Hyperband's median final regret over the same seeds. So two runs with the
same suites, seeds, budget and workers give the same q*, and those numbers (and the geometric-mean CI, a
bootstrap over the algorithm's own seeds with a fixed generator seed) are the same whichever run they came
from. The merge refuses anything else: a suite missing from the added run, a different q*, B or TAO Hyperband
row. One exception, kept visible: AUC is normalised by the largest first full-budget regret among ALL of a
run's sweeps on the suite (`metrics.regret_cap`), so it shifts a little with the run's set of algorithms. The
merge accepts TAO Hyperband AUCs that agree within `AUC_TOLERANCE` (relative) and records both per suite
(`auc_reference`), so a reader sees how far the added rows' AUC scale is from the base rows'.

The per-suite PNGs are not redrawn (they need the sweeps' traces, which a results file does not hold): each
run's own plots stay in its own output folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.search_efficiency.report import write_outputs

REFERENCE = "tao_hyperband"
AUC_TOLERANCE = 0.05  # relative difference allowed between the two runs' TAO Hyperband AUCs (see docstring)


class MergeError(ValueError):
    """Two results files that do not describe the same protocol."""


def merge_results(base: Mapping[str, Any], added: Mapping[str, Any], *, algorithms: list[str] | None = None,
                  merge_command: str = "") -> dict[str, Any]:
    """`base` with `algorithms` (default: every algorithm `added` has and `base` lacks) taken from `added`."""
    base_suites, added_suites = base["suites"], added["suites"]
    missing = [name for name in base_suites if name not in added_suites]
    if missing:
        raise MergeError(f"the added run lacks suite(s) {', '.join(missing)}; it must cover every suite of the base "
                         f"run ({', '.join(base_suites)})")
    if algorithms is None:
        names = {a for s in added_suites.values() for a in s["algorithms"]}
        algorithms = sorted(names - {a for s in base_suites.values() for a in s["algorithms"]})
    if not algorithms:
        raise MergeError("nothing to merge: the added run has no algorithm the base run lacks (name them with "
                         "--algorithms to replace rows)")
    merged_suites: dict[str, Any] = {}
    for name, suite in base_suites.items():
        other = added_suites[name]
        if other["budget_epochs"] != suite["budget_epochs"]:
            raise MergeError(f"suite {name}: budget B {other['budget_epochs']} in the added run, "
                             f"{suite['budget_epochs']} in the base run; the runs must use the same --iterations")
        if not math.isclose(other["target"], suite["target"], rel_tol=1e-12, abs_tol=1e-15):
            raise MergeError(f"suite {name}: target q* {other['target']!r} in the added run, {suite['target']!r} in "
                             f"the base run; both runs must include {REFERENCE} with the same --seeds and --workers")
        extra: dict[str, Any] = {}
        if REFERENCE in suite["algorithms"] and REFERENCE in other["algorithms"]:
            ours, theirs = suite["algorithms"][REFERENCE], other["algorithms"][REFERENCE]
            differ = sorted(k for k in {*ours, *theirs} if k != "auc" and ours.get(k) != theirs.get(k))
            if differ:
                raise MergeError(f"suite {name}: the two runs' {REFERENCE} rows differ ({', '.join(differ)}), so they "
                                 "did not run the same protocol (seeds, workers or TAO version)")
            if not math.isclose(ours["auc"], theirs["auc"], rel_tol=AUC_TOLERANCE):
                raise MergeError(f"suite {name}: {REFERENCE}'s AUC is {theirs['auc']:.4g} in the added run and "
                                 f"{ours['auc']:.4g} in the base run, more than {AUC_TOLERANCE:.0%} apart: the runs' "
                                 "AUC scales (the largest first regret among their algorithms) are not comparable")
            extra["auc_reference"] = {"base": ours["auc"], "added": theirs["auc"]}
        rows = dict(suite["algorithms"])
        for algorithm in algorithms:
            if algorithm not in other["algorithms"]:
                raise MergeError(f"suite {name}: the added run has no {algorithm!r} (it has "
                                 f"{', '.join(sorted(other['algorithms']))})")
            rows[algorithm] = other["algorithms"][algorithm]
        merged_suites[name] = {**suite, "algorithms": rows, **extra}
    geometric = dict(base.get("geometric_mean") or {})
    for algorithm in algorithms:
        entry = (added.get("geometric_mean") or {}).get(algorithm)
        if entry is not None and len(base_suites) > 1:
            if entry["suites"] != len(base_suites) or len(added_suites) != len(base_suites):
                raise MergeError(f"{algorithm}'s geometric mean in the added run is over {entry['suites']} suites, "
                                 f"the base run has {len(base_suites)}: run the added algorithms on exactly the "
                                 "base run's suites")
            geometric[algorithm] = entry
    runs = [*(base.get("merged_from") or [{"command": base["command"], "wall_time_s": base["wall_time_s"]}]),
            {"command": added["command"], "wall_time_s": added["wall_time_s"], "algorithms": algorithms}]
    command = " && ".join(run["command"] for run in runs) + (f" && {merge_command}" if merge_command else "")
    return {"command": command, "default_algorithm": base["default_algorithm"],
            "wall_time_s": round(sum(run["wall_time_s"] for run in runs), 1), "suites": merged_suites,
            "geometric_mean": geometric, "merged_from": runs}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="a search_efficiency.json")
    parser.add_argument("added", help="a search_efficiency.json of the same protocol with other algorithms")
    parser.add_argument("--algorithms", help="comma-separated algorithms to take from ADDED (default: those BASE lacks)")
    parser.add_argument("--workers", type=int, default=4, help="simulated workers per sweep of both runs (for the table)")
    parser.add_argument("--out", required=True, help="output folder (search_efficiency.json and .md)")
    args = parser.parse_args(argv)
    loaded = []
    for path in (args.base, args.added):
        try:
            loaded.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            print(f"error: cannot read results file {path}: {error}", file=sys.stderr)
            return 2
    command = "python -m benchmarks.search_efficiency.merge " + " ".join(argv)
    try:
        merged = merge_results(loaded[0], loaded[1], merge_command=command,
                               algorithms=args.algorithms.split(",") if args.algorithms else None)
    except (MergeError, KeyError) as error:
        detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        print(f"error: cannot merge {args.added} into {args.base}: {detail}", file=sys.stderr)
        return 2
    paths = write_outputs(Path(args.out), merged, workers=args.workers)
    print(f"wrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

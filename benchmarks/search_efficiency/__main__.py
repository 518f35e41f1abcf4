"""`python -m benchmarks.search_efficiency`: run the protocol, print the table, write JSON/markdown/PNGs.

    python -m benchmarks.search_efficiency --quick
    python -m benchmarks.search_efficiency --suites mfh3_good,sklearn_mlp --seeds 20 --jobs 2
    python -m benchmarks.search_efficiency --table my_curves.json.gz --algorithms tao_hyperband,ours:tpe
    python -m benchmarks.search_efficiency --list

See README.md in this folder for the protocol and the table format.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.search_efficiency.env import ROOT, BenchmarkEnvError, ensure_hash_seed, require_benchmark_env

QUICK_SUITE = "mfh3_good"
QUICK_ALGORITHMS = ("tao_hyperband", "tao_bayesian", "ours:mfbo", "optuna:tpe+hb")
DEFAULT_ALGORITHMS = (
    "tao_hyperband", "tao_bohb", "tao_bayesian", "optuna:random+hb", "optuna:tpe+hb", "optuna:tpe+sh",
    "optuna:gp+median", "optuna:cmaes+hb",
)


def _run_one(job: tuple[str, str, int, int, int, str | None]) -> Any:
    """One sweep; with a cache folder, a sweep already run with the same (algorithm, suite, seed, budget,
    workers) is read back instead, so a long run that was stopped, or one extended to more seeds, resumes."""
    import hashlib
    import pickle

    from benchmarks.search_efficiency.algorithms import cache_identity, run_algorithm
    from benchmarks.search_efficiency.suites import get_suite

    algorithm, suite, seed, budget, workers, cache = job
    path = None
    if cache:
        identity = cache_identity(algorithm)
        key = hashlib.sha1(f"{identity}|{suite}|{seed}|{budget}|{workers}".encode()).hexdigest()[:20]
        path = Path(cache) / f"{key}.pkl"
        if path.is_file():
            with path.open("rb") as handle:
                cached = pickle.load(handle)
            cached.algorithm = algorithm  # the same sweeps may have been made under an equivalent name
            return cached
    trace = run_algorithm(algorithm, get_suite(suite), seed=seed, budget_epochs=budget, workers=workers)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        with partial.open("wb") as handle:
            pickle.dump(trace, handle)
        partial.replace(path)
    return trace


def default_algorithm() -> str | None:
    """The algorithm `hpo run` uses when the sweep config names none, if the engine declares one."""
    from hpo.sweep import config_rules

    name = getattr(config_rules, "DEFAULT_ALGORITHM", None)
    if name:
        return f"ours:{name}"
    from hpo.sweep.config import sweep_schema

    default = sweep_schema()["properties"]["algorithm"]["properties"]["name"].get("default")
    return f"ours:{default}" if default else None


def _write(args: Any, command: str, results_by_suite: dict, traces_by_suite: dict, started: float) -> tuple[dict, dict]:
    from benchmarks.search_efficiency.metrics import regret_cap
    from benchmarks.search_efficiency.report import plot_suite, results_json, write_outputs

    out = Path(args.out)
    results = results_json(command=command, default_algorithm=default_algorithm(), suites=results_by_suite,
                           wall_time_s=time.monotonic() - started)
    stem = "search_efficiency_quick" if args.quick else "search_efficiency"
    paths = write_outputs(out, results, workers=args.workers, stem=stem)
    for suite_name, traces in traces_by_suite.items():
        data = results_by_suite[suite_name]
        cap = regret_cap([t for runs in traces.values() for t in runs])
        plot_suite(out / (f"{suite_name}_quick.png" if args.quick else f"{suite_name}.png"), suite_name, traces,
                   target=data["target"], budget=data["budget_epochs"], cap=cap)
    return results, paths


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"CI form: {QUICK_SUITE}, 3 seeds, {len(QUICK_ALGORITHMS)} algorithms, B = 1 TAO-HB iteration")
    parser.add_argument("--suites", help="comma-separated suite names (default: every Hartmann suite and bundled table)")
    parser.add_argument("--table", action="append", default=[], help="a curve table file to add as a suite (repeatable)")
    parser.add_argument("--algorithms", help="comma-separated names (see --list); 'ours' = every engine algorithm")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=10, help="budget B in TAO-Hyperband iterations")
    parser.add_argument("--workers", type=int, default=4, help="simulated concurrent trials per sweep")
    parser.add_argument("--jobs", type=int, default=1, help="processes running sweeps in parallel")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    parser.add_argument("--cache", help="folder keeping every finished sweep (reused: a stopped run resumes, more "
                                        "--seeds extend a run); default: none")
    parser.add_argument("--list", action="store_true", help="list suites and algorithms and exit")
    args = parser.parse_args(argv)
    try:
        require_benchmark_env()
    except BenchmarkEnvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ensure_hash_seed(argv)

    from benchmarks.search_efficiency import algorithms as algos
    from benchmarks.search_efficiency.metrics import protocol_budget, regret_cap, summarise, target
    from benchmarks.search_efficiency.report import markdown
    from benchmarks.search_efficiency.suites import get_suite, suite_names

    known = algos.registry()
    if args.list:
        print("suites:", ", ".join(suite_names()))
        print("algorithms:", ", ".join(known))
        for name, why in algos.skipped().items():
            print(f"  not simulated: ours:{name} ({why})")
        from benchmarks.search_efficiency.synetune import NOT_OFFERED

        for name, why in NOT_OFFERED.items():
            print(f"  not simulated: syne:{name} ({why})")
        return 0
    if args.quick:
        suites, seeds, iterations = [QUICK_SUITE], min(args.seeds, 3), 1
        chosen = list(QUICK_ALGORITHMS)
    else:
        suites = args.suites.split(",") if args.suites else list(suite_names())
        seeds, iterations = args.seeds, args.iterations
        chosen = list(DEFAULT_ALGORITHMS) + [n for n in known if n.startswith("ours:")]
    suites += args.table
    if args.algorithms:
        chosen = []
        for name in algos.split_names(args.algorithms):
            chosen += [n for n in known if n.startswith("ours:")] if name == "ours" else [name]
    if "tao_hyperband" not in chosen:
        chosen.insert(0, "tao_hyperband")  # the reference that defines q*
    try:
        unknown = [n for n in chosen if n not in known and algos.factory(n) is None]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bad_suites = []
    for suite in suites:
        try:
            get_suite(suite)
        except (ValueError, OSError) as error:
            bad_suites.append(str(error))
    if unknown or bad_suites:
        for name in unknown:
            print(f"error: unknown algorithm {name!r}; run with --list to see the names.", file=sys.stderr)
        for problem in bad_suites:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    chosen = list(dict.fromkeys(chosen))
    started = time.monotonic()
    command = "python -m benchmarks.search_efficiency " + " ".join(argv)
    results_by_suite: dict[str, Any] = {}
    traces_by_suite: dict[str, dict[str, list[Any]]] = {}
    for suite_name in suites:
        suite = get_suite(suite_name)
        budget = protocol_budget(suite.max_epochs, iterations)
        jobs = [(a, suite_name, seed, budget, args.workers, args.cache) for seed in range(seeds) for a in chosen]
        traces: dict[str, list[Any]] = {a: [] for a in chosen}
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                for trace in pool.map(_run_one, jobs):
                    traces[trace.algorithm].append(trace)
        else:
            for job in jobs:
                trace = _run_one(job)
                traces[trace.algorithm].append(trace)
        q = target(traces["tao_hyperband"], budget)
        cap = regret_cap([t for runs in traces.values() for t in runs])
        summaries = {a: summarise(runs, q, budget, cap) for a, runs in traces.items()}
        results_by_suite[suite.name] = {"target": q, "budget_epochs": budget, "algorithms": summaries}
        traces_by_suite[suite.name] = traces
        print(f"{suite.name}: q* = {q:.4g}, B = {budget}; {len(jobs)} sweeps done "
              f"({(time.monotonic() - started) / 60:.1f} min)", flush=True)
        # Written after every suite, so a long run that is stopped keeps the suites it finished.
        results, paths = _write(args, command, results_by_suite, traces_by_suite, started)
    print(markdown(results, workers=args.workers))
    print(f"\nwrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

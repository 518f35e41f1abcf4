"""Search-space benchmark: compile time, and samples per second on every sampling path.

    python benchmarks/space_bench.py [--quick] [--out benchmarks/results/space_bench.json]

Schemas: our generated `schemas/train.schema.json` (if present), TAO's packaged Mask2Former train
schema (when the variable `HPO_TAO_REFERENCE` names TAO's original tao-mask2former folder), and a synthetic 200-parameter TAO-format schema with
every kind (so the numbers do not depend on any one model). Paths: numpy random sampling, Optuna
define-by-run (`SearchSpace.suggest` with the weighted random sampler), Optuna plain distributions
(`study.ask(fixed_distributions=...)`, unconditional spaces only), Ray Tune param_space variant
generation (unconditional only) and Ray's OptunaSearch define-by-run route. Prints a rich table and
writes JSON; `--quick` is the tiny form CI runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def synthetic_schema(count: int = 200) -> dict[str, Any]:
    """A TAO-format schema with `count` searchable leaves cycling through every kind and condition."""
    leaves: dict[str, dict[str, Any]] = {"train.num_epochs": {"type": "int", "default": 20, "minimum": 1, "maximum": math.inf}}
    makers: list[Callable[[int], dict[str, Any]]] = [
        lambda i: {"type": "float", "default": 1e-3, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0"},
        lambda i: {"type": "int", "default": 64, "minimum": 8, "maximum": 1024, "math_cond": "/ 8"},
        lambda i: {"type": "int", "default": 100, "minimum": 1, "maximum": math.inf},
        lambda i: {"type": "categorical", "default": "a", "enum": ["a", "b", "c"], "option_weights": [0.6, 0.3, 0.1]},
        lambda i: {"type": "bool", "default": True},
        lambda i: {"type": "int", "default": 16, "minimum": 2, "maximum": 256, "math_cond": "^ 2"},
        lambda i: {"type": "float", "default": 0.5, "minimum": 0.0, "maximum": 1.0, "math_cond": "> 0.0 <= 1.0"},
        lambda i: {"type": "int", "default": 300, "minimum": 1, "maximum": 1000, "math_cond": "> depends_on",
                   "depends_on": f"sec{(i - 6) % 7}.p{i - 6}"},
    ]
    for index in range(count):
        leaves[f"sec{index % 7}.p{index}"] = makers[index % len(makers)](index)
    leaves["train.optim.milestones"] = {"type": "list", "default": [12, 16]}
    return _nest(leaves, defaults=[name for name in leaves if name != "train.num_epochs"])


def _nest(leaves: dict[str, dict[str, Any]], *, defaults: list[str]) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "object", "properties": {}}
    for path, leaf in leaves.items():
        node = root
        for part in path.split(".")[:-1]:
            node = node["properties"].setdefault(part, {"type": "collection", "properties": {}})
        node["properties"][path.split(".")[-1]] = leaf
    root["automl_default_parameters"] = defaults
    root["x_tao_schema"] = {"action": "train", "model": "synthetic"}
    return root


def _schemas() -> dict[str, dict[str, Any]]:
    from hpo.space import load_schema_file

    out = {}
    ours = REPO_ROOT / "schemas" / "train.schema.json"
    if ours.is_file():
        out["ours/train"] = load_schema_file(ours)
    tao = Path(os.environ.get("HPO_TAO_REFERENCE") or "/nonexistent") / "schemas" / "train.schema.json"
    if tao.is_file():
        out["tao-reference/train"] = load_schema_file(tao)
    out["synthetic-200"] = synthetic_schema()
    return out


def _timed(function: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rate(name: str, samples: int, run: Callable[[int], None]) -> dict[str, Any]:
    run(1)  # warm-up: imports and first-call caches stay out of the measurement
    start = time.perf_counter()
    run(samples)
    seconds = time.perf_counter() - start
    return {"path": name, "samples": samples, "seconds": seconds, "samples_per_second": samples / seconds}


def bench_schema(label: str, schema: dict[str, Any], *, samples: int, repeats: int) -> list[dict[str, Any]]:
    import optuna

    from hpo.space import compile_space
    from hpo.space.to_ray import optuna_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    compile_space(schema)  # warm-up
    compile_seconds = _timed(lambda: compile_space(schema), repeats)
    space = compile_space(schema)
    common = {"schema": label, "parameters": len(space), "conditional": space.is_conditional}
    rows = [{**common, "path": "compile", "samples": repeats, "seconds": compile_seconds, "samples_per_second": 1 / compile_seconds}]

    def numpy_path(n: int) -> None:
        rng = np.random.default_rng(0)
        for _ in range(n):
            space.sample(rng, epoch_budget=9)

    def optuna_define_by_run(n: int) -> None:
        study = optuna.create_study(sampler=space.optuna_sampler(seed=0))
        for _ in range(n):
            trial = study.ask()
            space.suggest(trial, epoch_budget=9)
            study.tell(trial, 0.0)

    rows.append({**common, **_rate("numpy sample", samples, numpy_path)})
    rows.append({**common, **_rate("optuna define-by-run", samples, optuna_define_by_run)})
    if not space.is_conditional:
        distributions = space.optuna_distributions()

        def optuna_plain(n: int) -> None:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            for _ in range(n):
                trial = study.ask(fixed_distributions=distributions)
                study.tell(trial, 0.0)

        def ray_param_space(n: int) -> None:
            from ray.tune.search.variant_generator import generate_variants

            param_space = space.ray_param_space()
            rng = np.random.default_rng(0)
            for _ in range(n):
                for _, config in generate_variants(param_space, random_state=rng):
                    space.select_values(config)

        rows.append({**common, **_rate("optuna plain distributions", samples, optuna_plain)})
        rows.append({**common, **_rate("ray param_space", samples, ray_param_space)})

    def ray_optuna_search(n: int) -> None:
        searcher = optuna_search(space, metric="mIoU", mode="max", seed=0, epoch_budget=9,
                                 sampler=optuna.samplers.RandomSampler(seed=0))
        for index in range(n):
            config = searcher.suggest(str(index))
            space.select_values(config)
            searcher.on_trial_complete(str(index), {"mIoU": 0.0})

    rows.append({**common, **_rate("ray OptunaSearch define-by-run", max(1, samples // 2), ray_optuna_search)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "space_bench.json"))
    args = parser.parse_args(argv)
    samples, repeats = (20, 2) if args.quick else (1000, 7)
    import ray  # noqa: F401  (import cost kept out of the first timing)

    rows: list[dict[str, Any]] = []
    for label, schema in _schemas().items():
        rows.extend(bench_schema(label, schema, samples=samples, repeats=repeats))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"search-space benchmark ({'quick' if args.quick else 'full'})")
    for column in ("schema", "params", "cond.", "path", "samples", "seconds", "per second"):
        table.add_column(column, justify="right" if column in ("params", "samples", "seconds", "per second") else "left")
    for row in rows:
        rate = "-" if row["path"] == "compile" else f"{row['samples_per_second']:,.0f}"
        seconds = f"{row['seconds'] * 1000:.2f} ms" if row["path"] == "compile" else f"{row['seconds']:.3f}"
        table.add_row(row["schema"], str(row["parameters"]), "yes" if row["conditional"] else "no", row["path"],
                      str(row["samples"]), seconds, rate)
    Console(width=max(Console().width, 110)).print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "space_bench",
        "quick": args.quick,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Outputs: `search_efficiency.json` (the issue's schema), a markdown table and an anytime-regret PNG per suite."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search_efficiency.metrics import Summary, geometric_mean, geometric_mean_ci
from benchmarks.search_efficiency.simulator import Trace

REFERENCES = ("tao_hyperband", "tao_bohb", "tao_bayesian")


def results_json(*, command: str, default_algorithm: str | None, suites: Mapping[str, Mapping[str, Any]],
                 wall_time_s: float) -> dict[str, Any]:
    by_algorithm: dict[str, list[Summary]] = {}
    for data in suites.values():
        for name, summary in data["algorithms"].items():
            by_algorithm.setdefault(name, []).append(summary)
    geo = {}
    for name, summaries in by_algorithm.items():
        point, low, high = geometric_mean_ci(summaries)
        geo[name] = {"suites": len(summaries), "speedup": point, "ci_low": low, "ci_high": high}
    return {"command": command, "default_algorithm": default_algorithm, "wall_time_s": round(wall_time_s, 1),
            "suites": {name: {"target": s["target"], "budget_epochs": s["budget_epochs"],
                              "algorithms": {a: summary.to_dict() for a, summary in s["algorithms"].items()}}
                       for name, s in suites.items()},
            # over the suites: geometric mean of the speed-ups with a 95 % bootstrap CI (metrics.geometric_mean_ci)
            "geometric_mean": geo}


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown(results: Mapping[str, Any], *, workers: int, image_suffix: str = "") -> str:
    lines = [
        "# Search efficiency: epochs to TAO Hyperband's final quality",
        "",
        f"Command: `{results['command']}`  ",
        f"Wall time: {results['wall_time_s'] / 60:.1f} min; simulated workers per sweep: {workers}.  ",
        f"Default algorithm (`hpo run` with no algorithm named): {results['default_algorithm'] or 'none declared by the engine'}.",
        "",
        "Speed-up = B / median(E): B = the cumulative-epoch budget (whole TAO-Hyperband iterations), E = epochs until the "
        "full-budget incumbent's regret reaches q* (TAO Hyperband's median final regret); seeds that never reach "
        "it count as B. CI: 95 % percentile bootstrap over seeds. AUC: normalised anytime regret (lower is better).",
        "",
    ]
    speedups: dict[str, list[float]] = {}
    for suite, data in results["suites"].items():
        lines += [f"## {suite}", "", f"q* = {data['target']:.4g}, B = {data['budget_epochs']} epochs", "",
                  "| algorithm | seeds | median E | speed-up | 95% CI | success | AUC |",
                  "|---|---:|---:|---:|---|---:|---:|"]
        rows = sorted(data["algorithms"].items(), key=lambda item: (-item[1]["speedup"], item[1]["auc"]))
        for name, row in rows:
            speedups.setdefault(name, []).append(row["speedup"])
            lines.append(f"| {name} | {row['seeds']} | {row['median_epochs_to_target']:.0f} | {_fmt(row['speedup'])}x | "
                         f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] | {row['success_rate'] * 100:.0f}% | {_fmt(row['auc'], 3)} |")
        lines += ["", f"![anytime regret]({suite}{image_suffix}.png)", ""]
    if len(results["suites"]) > 1:
        geo = results.get("geometric_mean") or {}
        lines += ["## Geometric mean of speed-ups over suites", "",
                  "| algorithm | suites | geo-mean speed-up | 95% CI |", "|---|---:|---:|---|"]
        for name, values in sorted(speedups.items(), key=lambda item: -geometric_mean(item[1])):
            ci = geo.get(name)
            interval = f"[{_fmt(ci['ci_low'])}, {_fmt(ci['ci_high'])}]" if ci else "n/a"
            lines.append(f"| {name} | {len(values)} | {_fmt(geometric_mean(values))}x | {interval} |")
        lines.append("")
    return "\n".join(lines)


def plot_suite(path: Path, suite: str, traces: Mapping[str, Sequence[Trace]], *, target: float, budget: int,
               cap: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.unique(np.linspace(1, budget, 300).astype(int))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ordered = sorted(traces.items(), key=lambda item: (item[0] not in REFERENCES, item[0]))
    for name, runs in ordered:
        regret = np.minimum(np.stack([t.regret_at(grid) for t in runs]), cap)
        median = np.median(regret, axis=0)
        style = {"linewidth": 2.4, "linestyle": "--"} if name in REFERENCES else {"linewidth": 1.4}
        line, = ax.plot(grid, np.maximum(median, 1e-6), label=name, **style)
        low, high = np.percentile(regret, 25, axis=0), np.percentile(regret, 75, axis=0)
        ax.fill_between(grid, np.maximum(low, 1e-6), np.maximum(high, 1e-6), color=line.get_color(), alpha=0.08)
    ax.axhline(max(target, 1e-6), color="black", linewidth=0.8, linestyle=":", label="q* (TAO HB final)")
    ax.set_yscale("log")
    ax.set_xlabel("cumulative epochs trained")
    ax.set_ylabel("incumbent regret (full-budget results only)")
    ax.set_title(f"{suite}: median incumbent regret over seeds (band: quartiles)")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(out_dir: Path, results: Mapping[str, Any], *, workers: int, stem: str = "search_efficiency") -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(markdown(results, workers=workers, image_suffix="_quick" if stem.endswith("_quick") else ""))
    return {"json": json_path, "markdown": md_path}


def summary_rows(suites: Mapping[str, Mapping[str, Summary]]) -> list[tuple[str, str, Summary]]:
    return [(suite, name, summary) for suite, data in suites.items() for name, summary in data.items()]

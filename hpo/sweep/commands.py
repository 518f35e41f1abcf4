"""`hpo plan | run | resume | status | train`: the sweep commands.

`hpo run` shows the plan and asks before spending compute only when a person is there to answer (stdin and
stdout are terminals and `CI` is unset); `--yes`, pipes and CI never block.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from skillkit.errors import UserError
from hpo.sweep.config import load_sweep_config, sweep_config_from_dict
from hpo.sweep.context import SweepContext, prepare_sweep
from hpo.sweep.live import LiveTable, render_outcome, trials_table
from hpo.sweep.plan import make_plan, render_plan, write_plan
from hpo.sweep.runner import execute, load_workspace_context, start_workspace
from hpo.sweep.summary import build_summary
from hpo.sweep.workspace import SweepWorkspace, find_sweep_dir, read_lock_holder
from skillkit.files import SPEC_FILE
from hpo.trials.record import load_records


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")


def confirm(console: Console, question: str) -> bool:
    console.print(f"{question} [Y/n] ", end="")
    answer = sys.stdin.readline().strip().lower()
    return answer in ("", "y", "yes")


def _plan_and_run(ctx: SweepContext, args: argparse.Namespace, console: Console) -> int:
    plan = make_plan(ctx, probe=getattr(args, "probe", False))
    start_workspace(ctx)
    write_plan(plan)
    render_plan(plan, console)
    if not args.yes and interactive() and not confirm(console, "Start the sweep?"):
        console.print("not started; the plan is in " + str(ctx.workspace.plan_dir))
        return 0
    planned = plan.batch if plan.batch_is_exact else []
    execute(ctx, observers=[LiveTable(console, live=None if not args.no_live else False)], planned=planned)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    console = Console()
    ctx = prepare_sweep(load_sweep_config(args.sweep))
    plan = make_plan(ctx, probe=args.probe)
    plan_file = write_plan(plan)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
    else:
        render_plan(plan, console)
        console.print(f"plan written to {plan_file}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _plan_and_run(prepare_sweep(load_sweep_config(args.sweep)), args, Console())


def cmd_resume(args: argparse.Namespace) -> int:
    console = Console()
    ctx = load_workspace_context(args.workspace, name=args.name, time_budget_s=args.time_budget_s)
    execute(ctx, observers=[LiveTable(console, live=None if not args.no_live else False)])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    console = Console()
    root = find_sweep_dir(args.workspace, args.name)
    workspace = SweepWorkspace(root)
    records = load_records(workspace.trials_dir)
    summary_file = workspace.summary_file
    recorded = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    holder = read_lock_holder(workspace.lock_file)
    if args.json:
        try:
            summary = build_summary(load_workspace_context(root))
        except UserError:
            summary = {**recorded, "trials": [r.to_dict() for r in records]}
        summary["driver"] = holder
        print(json.dumps(summary, indent=2, default=str))
        return 0
    metric = recorded.get("metric") or (records[0].metric if records else "metric")
    direction = recorded.get("direction") or (records[0].direction if records else "maximize")
    running = f"running (driver pid {holder.get('pid')} on {holder.get('host')})" if holder else "no driver running"
    console.print(trials_table(records, metric=metric, direction=direction, max_epochs=recorded.get("max_epochs"),
                               trials_dir=workspace.trials_dir, title=f"sweep {root.name}: {running}"))
    if recorded:
        render_outcome({**recorded, "counts": _counts(records)}, console)
    return 0


def _counts(records: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state] = counts.get(record.state, 0) + 1
    return counts


def cmd_train(args: argparse.Namespace) -> int:
    from hpo.policy import PLAIN, route_train
    from skillkit.skill_dir import SkillDir

    console = Console()
    skill = SkillDir(args.skill_dir)
    decision = route_train(skill, explicit=args.automl_policy, request=args.request)
    console.print(decision.message)
    if decision.route == PLAIN:
        return run_plain_training(skill, args, console)
    if args.sweep:
        config = load_sweep_config(args.sweep)
        if config.skill_dir and args.skill_dir and Path(config.skill_dir).resolve() != Path(args.skill_dir).resolve():
            raise UserError(f"--skill-dir {args.skill_dir} and the sweep config's skill_dir {config.skill_dir} differ; give one.")
    else:
        name = f"train-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        data: dict[str, Any] = {
            "name": name, "skill_dir": str(Path(args.skill_dir).resolve()), "workspace": args.workspace,
            "algorithm": {"name": args.algorithm, "max_trials": args.max_trials}, "backend": args.backend,
            "spec_overrides": list(args.overrides),
        }
        if args.spec:
            data["base_spec"] = str(Path(args.spec).resolve())
        config = sweep_config_from_dict(data, base_dir=Path.cwd(), source="hpo train")
    args.no_live = False
    return _plan_and_run(prepare_sweep(config), args, console)


def run_plain_training(skill: Any, args: argparse.Namespace, console: Console) -> int:
    """One run of the skill's train command on the spec (overrides applied), output in --results-dir.

    Validated against the train schema when the skill ships one; a skill without packaged schemas (the
    "enabled but not runnable" case) still trains, from its template when it has one."""
    import copy

    from skillkit.spec import apply_overrides, deep_merge, dump_spec, read_spec_file, set_dotted, validate_spec
    from hpo.sweep.context import spec_keys

    results_dir = Path(args.results_dir or f"results/train-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}").resolve()
    spec = copy.deepcopy(skill.template("train")) if skill.has_template("train") else {}
    if args.spec:
        spec = deep_merge(spec, read_spec_file(args.spec))
    spec = apply_overrides(spec, list(args.overrides))
    set_dotted(spec, spec_keys(skill).results_dir, str(results_dir))
    if skill.has_schema("train"):
        validate_spec(spec, "train", skill, source=str(args.spec or "<train template>"))
    spec_path = dump_spec(spec, results_dir / SPEC_FILE)
    argv = skill.train_command(spec_path)
    console.print(f"running: {' '.join(argv)}")
    return subprocess.run(argv, stdin=subprocess.DEVNULL).returncode


def register(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="show (and write) what a sweep will run, before running it")
    plan.add_argument("sweep", help="sweep config YAML")
    plan.add_argument("--probe", action="store_true", help="time one epoch of the base spec for the wall-time estimate")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)

    run = subparsers.add_parser("run", help="plan and run a sweep")
    run.add_argument("sweep", help="sweep config YAML")
    run.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    run.add_argument("--probe", action="store_true", help="time one epoch first for the wall-time estimate")
    run.add_argument("--no-live", action="store_true", help="log lines instead of a live table")
    run.set_defaults(func=cmd_run)

    resume = subparsers.add_parser("resume", help="continue a sweep whose driver stopped (even by SIGKILL)")
    resume.add_argument("workspace", help="the sweep folder, or a workspace holding one sweep")
    resume.add_argument("--name", help="the sweep's name when the workspace holds several")
    resume.add_argument("--no-live", action="store_true", help="log lines instead of a live table")
    resume.add_argument("--time-budget-s", type=float, help="time budget of this driver run (0: none); "
                        "default: algorithm.time_budget_s of the sweep")
    resume.set_defaults(func=cmd_resume)

    status = subparsers.add_parser("status", help="show a sweep's trials (from another terminal)")
    status.add_argument("workspace", help="the sweep folder, or a workspace holding one sweep")
    status.add_argument("--name", help="the sweep's name when the workspace holds several")
    status.add_argument("--json", action="store_true", help="print the summary as JSON")
    status.set_defaults(func=cmd_status)

    train = subparsers.add_parser("train", help="train: a sweep or one plain training, per automl_policy")
    train.add_argument("--skill-dir", required=True, help="the skill directory")
    train.add_argument("--spec", help="the train spec (default: the skill's template)")
    train.add_argument("--automl-policy", choices=("on", "off"), help="force AutoML on or off for this run only")
    train.add_argument("--request", help="the user's request text ('turn off AutoML' etc. means off)")
    train.add_argument("--sweep", help="sweep config for the AutoML route (default: ASHA, --max-trials trials)")
    train.add_argument("--workspace", default="hpo_workspace", help="workspace for the AutoML route")
    train.add_argument("--algorithm", default="asha", help="algorithm for the AutoML route without --sweep")
    train.add_argument("--backend", default="ray", choices=("ray", "optuna"))
    train.add_argument("--max-trials", type=int, default=8)
    train.add_argument("--results-dir", help="results folder of a plain training")
    train.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    train.add_argument("overrides", nargs="*", help="dotted overrides a.b=value")
    train.set_defaults(func=cmd_train)

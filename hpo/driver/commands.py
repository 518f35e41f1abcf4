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
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from hpo.driver.context import SweepContext, prepare_sweep
from hpo.driver.estimate import check_estimate
from hpo.driver.live import LiveTable, render_outcome, trials_table
from hpo.driver.plan import make_plan, planned_points, render_plan, write_plan
from hpo.driver.runner import SweepInterrupted, execute, load_workspace_context, refuse_existing_sweep, start_workspace
from hpo.driver.summary import build_summary
from hpo.driver.workspace import SweepWorkspace, find_sweep_dir, read_lock_holder
from hpo.sweep.config import load_sweep_config, override_list, read_sweep_config_data, sweep_config_from_dict
from hpo.sweep.config_rules import DEFAULT_ALGORITHM
from hpo.trials.record import load_records
from skillkit.errors import SweepConfigError, UserError
from skillkit.files import SPEC_FILE
from skillkit.spec.dotted import get_dotted, set_dotted


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")


def confirm(console: Console, question: str) -> bool:
    console.print(f"{question} [Y/n] ", end="")
    answer = sys.stdin.readline().strip().lower()
    return answer in ("", "y", "yes")


def _plan_and_run(ctx: SweepContext, args: argparse.Namespace, console: Console) -> int:
    plan = make_plan(ctx, probe=getattr(args, "probe", False))
    # The plan is written before sweep.yaml (which makes the folder resumable), so a driver killed while
    # starting leaves either nothing to resume or a sweep whose resume runs the same first batch.
    refuse_existing_sweep(ctx)
    write_plan(plan)
    start_workspace(ctx)
    render_plan(plan, console)
    if not args.yes and interactive() and not confirm(console, "Start the sweep?"):
        console.print("not started; the plan is in " + str(ctx.workspace.plan_dir))
        return 0
    planned = plan.points if plan.batch_is_exact else []
    return _execute(ctx, args, console, planned=planned, estimated_s=plan.estimated_wall_s, check=True)


def _execute(ctx: SweepContext, args: argparse.Namespace, console: Console, *, planned: Any = (),
             estimated_s: float | None = None, check: bool = False) -> int:
    """Run the sweep with the live view. An interrupted sweep ends with 130 and no second message: the live
    view has already said it was interrupted and how to continue. With `check`, the plan's estimate is set
    against the wall time the sweep took (set-up, trials and promotion)."""
    started = time.monotonic()
    try:
        execute(ctx, observers=[LiveTable(console, live=None if not args.no_live else False)], planned=planned)
    except SweepInterrupted as stop:
        return stop.exit_code
    if check:
        console.print(check_estimate(ctx.workspace.plan_dir, estimated_s, time.monotonic() - started))
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
    if args.join:
        return _join_and_run(args, Console())
    return _plan_and_run(prepare_sweep(load_sweep_config(args.sweep)), args, Console())


def _join_and_run(args: argparse.Namespace, console: Console) -> int:
    """`hpo run SWEEP.yaml --join`: one more worker for the sweep a first worker started (hpo/driver/join.py)."""
    from hpo.driver.join import join_sweep_context

    config = load_sweep_config(args.sweep)
    console.print(f"joining sweep '{config.name}' (study in the shared storage, workspace {config.sweep_dir})")
    ctx = join_sweep_context(config, worker_id=args.worker_id, wait_s=args.wait_s)
    console.print(f"worker {ctx.worker_id} joined; it runs trials until the budget is spent")
    return _execute(ctx, args, console)  # Ctrl-C said once, exit 130, as for the first worker


def cmd_resume(args: argparse.Namespace) -> int:
    console = Console()
    ctx = load_workspace_context(args.workspace, name=args.name, time_budget_s=args.time_budget_s)
    return _execute(ctx, args, console, planned=planned_points(ctx.workspace.plan_dir))


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
        render_outcome({**recorded, "counts": _counts(records)}, console, sweep_dir=root)
    return 0


def _counts(records: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state] = counts.get(record.state, 0) + 1
    return counts


#: `hpo train` flags that configure the sweep of the AutoML route: (flag, attribute, sweep-config key, default).
SWEEP_FLAGS: tuple[tuple[str, str, str, Any], ...] = (
    ("--spec", "spec", "base_spec", None),
    ("--workspace", "workspace", "workspace", "hpo_workspace"),
    ("--algorithm", "algorithm", "algorithm.name", DEFAULT_ALGORITHM),
    ("--backend", "backend", "backend", "ray"),
    ("--max-trials", "max_trials", "algorithm.max_trials", 8),
)


def _path_flag(value: str) -> str:
    return str(Path(value).resolve())


def sweep_data_for_train(args: argparse.Namespace) -> tuple[dict[str, Any], Path, str]:
    """The sweep config data of `hpo train`'s AutoML route: the --sweep file with the flags given, or the
    flags alone. A flag and the file naming different values for one key is an error naming both; a flag
    the file leaves unset fills it. Positional overrides come after the file's `spec_overrides` (they win)."""
    given = {key: getattr(args, attribute) for _, attribute, key, _ in SWEEP_FLAGS if getattr(args, attribute) is not None}
    for key in ("base_spec", "workspace"):
        if key in given:
            given[key] = _path_flag(given[key])
    if not args.sweep:
        data: dict[str, Any] = {
            "name": f"train-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}", "skill_dir": str(Path(args.skill_dir).resolve()),
            "algorithm": {}, "spec_overrides": list(args.overrides),
        }
        for _flag, _attribute, key, default in SWEEP_FLAGS:
            value = given.get(key, default)
            if value is not None:
                set_dotted(data, key, _path_flag(value) if key == "workspace" else value)
        return data, Path.cwd(), "hpo train"
    source = Path(args.sweep)
    data = read_sweep_config_data(source)
    if not isinstance(data, dict):
        raise SweepConfigError(f"sweep config '{source}' must be a mapping of keys (name, algorithm, ...).")
    base_dir = source.resolve().parent
    conflicts = []
    for flag, _attribute, key, _default in SWEEP_FLAGS:
        if key not in given:
            continue
        mine = get_dotted(data, key, None)
        if mine is None:
            set_dotted(data, key, given[key])
            continue
        theirs = str((base_dir / str(mine)).resolve()) if key in ("base_spec", "workspace") else mine
        if theirs != given[key]:
            conflicts.append(f"{flag} {getattr(args, _attribute)} and the sweep config's {key}: {mine}")
    if args.skill_dir and data.get("skill_dir") is not None and \
            (base_dir / str(data["skill_dir"])).resolve() != Path(args.skill_dir).resolve():
        conflicts.append(f"--skill-dir {args.skill_dir} and the sweep config's skill_dir: {data['skill_dir']}")
    if conflicts:
        raise SweepConfigError(
            f"hpo train --sweep {source}: " + "; ".join(conflicts) + ". Each names the same setting twice with "
            "different values: drop the flag or change the sweep config, so one value is given."
        )
    data.setdefault("skill_dir", str(Path(args.skill_dir).resolve()))
    if args.overrides:
        data["spec_overrides"] = [*override_list(data.get("spec_overrides")), *args.overrides]
    return data, base_dir, str(source)


def cmd_train(args: argparse.Namespace) -> int:
    from hpo.policy import PLAIN, route_train
    from skillkit.skill_dir import SkillDir

    console = Console()
    skill = SkillDir(args.skill_dir)
    decision = route_train(skill, explicit=args.automl_policy, request=args.request)
    if decision.route == PLAIN:
        sweep_only = [flag for flag, attribute, _key, _default in SWEEP_FLAGS[1:] if getattr(args, attribute) is not None]
        sweep_only += ["--sweep"] if args.sweep else []
        if sweep_only:
            raise SweepConfigError(
                f"{', '.join(sweep_only)} configure{'s' if len(sweep_only) == 1 else ''} a sweep, but this request "
                f"runs one plain training ({decision.policy_source}: automl_policy {decision.policy}); drop "
                f"{'it' if len(sweep_only) == 1 else 'them'}, or let AutoML run."
            )
        console.print(decision.message)
        return run_plain_training(skill, args, console)
    if args.results_dir:
        raise SweepConfigError(
            f"--results-dir names the folder of one plain training, but this request runs a sweep (automl_policy "
            f"{decision.policy}, {decision.policy_source}), which writes to --workspace; drop --results-dir, or "
            "add --automl-policy off for one plain training."
        )
    console.print(decision.message)
    data, base_dir, source = sweep_data_for_train(args)
    config = sweep_config_from_dict(data, base_dir=base_dir, source=source)
    args.no_live = False
    return _plan_and_run(prepare_sweep(config), args, console)


def run_plain_training(skill: Any, args: argparse.Namespace, console: Console) -> int:
    """One run of the skill's train command on the spec (overrides applied), output in --results-dir.

    Validated against the train schema when the skill ships one; a skill without packaged schemas (the
    "enabled but not runnable" case) still trains, from its template when it has one."""
    import copy

    from hpo.driver.context import spec_keys
    from skillkit.spec import apply_overrides, deep_merge, dump_spec, read_spec_file, set_dotted, validate_spec

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
    run.add_argument("--join", action="store_true",
                     help="join the sweep a first `hpo run` started (backend optuna, PostgreSQL storage, shared "
                          "workspace): run its trials as one more worker; see docs/cluster-optuna-workers.md")
    run.add_argument("--worker-id", help="with --join: this worker's name in the study (default: host-pid-random)")
    run.add_argument("--wait-s", type=float, default=600.0,
                     help="with --join: how long to wait for the first worker to create the sweep (default 600)")
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
    train.add_argument("--sweep", help="sweep config for the AutoML route (default: algorithm mfbo, --max-trials trials); the "
                       "flags below fill what it leaves unset, and naming a value it sets differently is an error")
    train.add_argument("--workspace", help="workspace for the AutoML route (default: hpo_workspace)")
    train.add_argument("--algorithm", help=f"algorithm for the AutoML route (default: {DEFAULT_ALGORITHM})")
    train.add_argument("--backend", choices=("ray", "optuna"), help="backend for the AutoML route (default: ray)")
    train.add_argument("--max-trials", type=int, help="trials of the AutoML route (default: 8)")
    train.add_argument("--results-dir", help="results folder of a plain training")
    train.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    train.add_argument("overrides", nargs="*", help="dotted overrides a.b=value (applied after the sweep config's "
                       "spec_overrides: for the same key, these win)")
    train.set_defaults(func=cmd_train)

"""`hpo promote WORKSPACE [--trial ID] [--epoch E]`: hand a sweep's best checkpoint over to export/deploy."""

from __future__ import annotations

import argparse


def _promote(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hpo.promotion import promote
    from hpo.tracking import sweep_files

    sweep_dir = sweep_files.find_sweep_dir(args.workspace, args.sweep)
    result = promote(
        sweep_dir, trial_id=args.trial, epoch=args.epoch, evaluate=False if args.no_evaluate else None,
        register=False if args.no_register else None, keep_all_checkpoints=True if args.keep_all_checkpoints else None,
    )
    record = result.record
    metric = record["metric"]
    console = Console()
    console.print(f"promoted trial [bold]{record['trial_id']}[/] epoch [bold]{record['epoch']}[/] "
                  f"({metric['name']} = {metric['value']}) -> {result.best_dir}")
    console.print(f"  checkpoint: {record['paths']['checkpoint']}")
    if record.get("previous_best_kept_at"):
        console.print(f"  [yellow]the previous best/ held files promotion did not write: kept, now "
                      f"{record['previous_best_kept_at']}[/]")
    for name in ("export_spec", "evaluate_spec", "deploy_gen_trt_engine_spec"):
        if name in record["paths"]:
            console.print(f"  {name}: {record['paths'][name]}")
    evaluation = record["evaluation"]
    if evaluation["run"] is not None:
        console.print(f"  final evaluation: {evaluation['final']} (promoted {evaluation['promoted']}, "
                      f"baseline {evaluation['baseline']})" + (f" [red]{evaluation['run']['error']}[/]"
                                                               if evaluation["run"]["error"] else ""))
    mlflow = record.get("mlflow") or {}
    if mlflow.get("model_version"):
        console.print(f"  registry: {mlflow['model_uri']} = version {mlflow['model_version']}")
    elif mlflow.get("pending_operations"):
        console.print(f"  registry: pending ({mlflow['pending_operations']} tracking operation(s) kept in the journal; "
                      f"run 'hpo sync-tracking {sweep_dir}' when the tracking server is back)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "promote", help="promote a sweep's best trial/epoch: best/ checkpoint, export and deploy specs, registry",
        description="Picks the best successful trial by the sweep's metric and direction and its best epoch (from "
                    "its validation history, not its last epoch), writes best/ (checkpoint, train/export/evaluate/"
                    "deploy specs, best.json), evaluates it, registers it in the MLflow Model Registry under the "
                    "alias, and deletes checkpoints no longer needed. Runs automatically at the end of a sweep.",
    )
    parser.add_argument("workspace", metavar="WORKSPACE", help="a sweep folder, or a workspace holding one sweep")
    parser.add_argument("--sweep", default=None, help="sweep name when WORKSPACE holds several")
    parser.add_argument("--trial", default=None, metavar="ID", help="promote this trial instead of the best one")
    parser.add_argument("--epoch", type=int, default=None, metavar="E", help="promote this epoch of --trial")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the final evaluation")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or register the model")
    parser.add_argument("--keep-all-checkpoints", action="store_true", help="delete no checkpoint")
    parser.set_defaults(func=_promote)

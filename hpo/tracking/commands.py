"""`hpo compare` (a table across sweeps) and `hpo sync-tracking` (log what an outage kept in the journal)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hpo.tracking.compare import compare, render_table, write_csv

    rows = compare(args.targets, tracking_uri=args.tracking_uri)
    # Not a terminal (a pipe, a CI log): a wide table rather than one folded into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 220)
    console.print(render_table(rows))
    if args.csv:
        path = write_csv(rows, Path(args.csv))
        console.print(f"wrote {len(rows)} row(s) to {path}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from hpo.tracking import sweep_files
    from hpo.tracking.observer import log_sweep_from_files
    from hpo.tracking.settings import TrackingSettings
    from hpo.tracking.tracker import Tracker

    sweep_dir = sweep_files.find_sweep_dir(args.workspace, args.sweep)
    settings = TrackingSettings.for_sweep(sweep_dir, sweep_files.load_config(sweep_dir))
    if args.tracking_uri:
        from dataclasses import replace

        settings = replace(settings, tracking_uri=args.tracking_uri, artifact_location=None)
    if args.backfill:
        log_sweep_from_files(sweep_dir, settings=settings)
    result = Tracker(settings, sweep_dir).flush(force=True)
    if result.complete:
        print(f"{sweep_dir}: tracking is up to date ({result.applied} operation(s) logged now, "
              f"{result.skipped} skipped) on {settings.tracking_uri}")
        return 0
    print(f"{sweep_dir}: {result.pending} operation(s) still pending; {settings.tracking_uri} is unreachable "
          f"({result.error})")
    return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    from hpo.tracking.dashboards import register as register_ui

    register_ui(subparsers)
    compare = subparsers.add_parser(
        "compare", help="compare sweeps (workspaces or MLflow experiments) in one table",
        description="One row per sweep: best metric, trials, pruned, failed, GPU-hours and best params. A TARGET "
                    "that is a folder is read from its files (every sweep in it); any other TARGET is an MLflow "
                    "experiment name on --tracking-uri.",
    )
    compare.add_argument("targets", nargs="+", metavar="EXPERIMENT_OR_WORKSPACE")
    compare.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for experiment names "
                                                              "(default: $MLFLOW_TRACKING_URI)")
    compare.add_argument("--csv", default=None, metavar="OUT", help="also write the table as CSV to OUT")
    compare.set_defaults(func=_compare)

    sync = subparsers.add_parser(
        "sync-tracking", help="log tracking operations kept in a sweep's journal while MLflow was unreachable",
        description="Replays <sweep>/tracking/journal.jsonl into MLflow (idempotent: nothing is logged twice). "
                    "--backfill first logs a sweep that ran without tracking from its files.",
    )
    sync.add_argument("workspace", metavar="WORKSPACE")
    sync.add_argument("--sweep", default=None, help="sweep name when WORKSPACE holds several")
    sync.add_argument("--tracking-uri", default=None, help="override the sweep config's tracking URI")
    sync.add_argument("--backfill", action="store_true", help="log runs for trials the journal does not know yet")
    sync.set_defaults(func=_sync)

"""`hpo storage check|stage|pull|push`: pre-flight, staging and workspace sync from the command line.

`check` answers "will my sweep be able to read its data?" before anything runs; `stage` fills the cache
ahead of time (e.g. on a node image); `pull`/`push` move a sweep workspace between a local folder and an
`s3://` prefix by hand (the driver does the same automatically).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hpo.spec.datasources import resolve_data_sources
from hpo.storage.preflight import render_preflight, run_preflight
from hpo.storage.router import Storage
from hpo.storage.staging import data_paths_for, stage_spec_sources
from hpo.storage.sync import WorkspaceMirror
from skillkit.skill_dir import ACTIONS, SkillDir
from skillkit.spec.loader import merge_spec
from skillkit.spec.yaml_io import dump_spec


def _spec_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The action's spec (template + file + overrides + dataset roots) and its data keys."""
    skill = SkillDir(args.skill_dir)
    spec = merge_spec(args.spec, args.action, args.overrides, skill)
    if args.train_dataset or args.eval_dataset or args.inference_dataset:
        resolve_data_sources(
            spec, skill, args.action, train_datasets=args.train_dataset, eval_dataset=args.eval_dataset,
            inference_dataset=args.inference_dataset, dataset_type=args.dataset_type,
        )
    return spec, data_paths_for(skill.info, args.action)


def _check(args: argparse.Namespace) -> int:
    spec, keys = _spec_from_args(args)
    report = run_preflight(spec, data_paths=keys, workspace=args.workspace,
                           storage=Storage(endpoint_url=args.endpoint_url))
    if args.json:
        print(json.dumps({"ok": report.ok, "credential_source": report.credential_source,
                          "endpoint": report.endpoint, "rows": report.table_rows()}, indent=2))
    else:
        render_preflight(report)
    report.raise_for_problems()
    return 0


def _stage(args: argparse.Namespace) -> int:
    spec, keys = _spec_from_args(args)
    report = stage_spec_sources(spec, data_paths=keys, cache_dir=args.cache_dir, workspace=args.record_dir,
                                storage=Storage(endpoint_url=args.endpoint_url))
    for source in report.sources:
        hit = "cache hit" if source.cache_hit else f"{source.seconds:.1f}s"
        print(f"{', '.join(source.spec_keys)}: {source.uri} -> {source.staged_path} "
              f"({source.files} files, {hit})", file=sys.stderr)
    if args.out:
        dump_spec(report.spec, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _pull(args: argparse.Namespace) -> int:
    report = WorkspaceMirror(args.local_dir, args.remote, storage=Storage(endpoint_url=args.endpoint_url)).pull(
        args.paths or None)
    print(f"pulled {report.transferred} file(s), {report.bytes} bytes ({report.skipped} unchanged, "
          f"{report.links} link(s)) into {args.local_dir}", file=sys.stderr)
    return 0


def _push(args: argparse.Namespace) -> int:
    report = WorkspaceMirror(args.local_dir, args.remote, storage=Storage(endpoint_url=args.endpoint_url)).push(
        args.paths or None, delete=args.delete)
    print(f"pushed {report.transferred} file(s), {report.bytes} bytes ({report.skipped} unchanged, "
          f"{report.deleted} deleted) to {args.remote}", file=sys.stderr)
    return 0


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--spec", default=None, help="spec YAML merged onto the action's template")
    parser.add_argument("--action", default="train", choices=ACTIONS)
    parser.add_argument("--skill-dir", default=None)
    parser.add_argument("--train-dataset", default=None, help="train dataset root (folder or s3:// prefix)")
    parser.add_argument("--eval-dataset", default=None, help="evaluation dataset root (folder or s3:// prefix)")
    parser.add_argument("--inference-dataset", default=None, help="inference dataset root")
    parser.add_argument("--dataset-type", default=None, help="coco_panoptic, coco or ade (default: detected)")
    parser.add_argument("--endpoint-url", default=None,
                        help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as dataset.train.img_dir=s3://...")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("storage", help="check, stage and sync data and workspaces on S3")
    commands = parser.add_subparsers(dest="storage_command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser("check", help="pre-flight: credentials, every input readable, sizes")
    _spec_arguments(check)
    check.add_argument("--workspace", default=None, help="sweep workspace (s3:// prefix) to test for writing")
    check.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    check.set_defaults(func=_check)

    stage = commands.add_parser("stage", help="download and extract the spec's s3:// data into the cache")
    _spec_arguments(stage)
    stage.add_argument("--cache-dir", default=None, help="staging cache (default: $HPO_DATA_CACHE or ~/.cache/hpo/data)")
    stage.add_argument("--record-dir", default=None, help="folder to write data_staging.json into")
    stage.add_argument("-o", "--out", default=None, help="write the spec with local paths here")
    stage.set_defaults(func=_stage)

    for name, handler, text in (("pull", _pull, "download a workspace from S3 into a local folder"),
                                ("push", _push, "upload a local workspace folder to S3 (changed files only)")):
        sync = commands.add_parser(name, help=text)
        sync.add_argument("remote", help="workspace URI, e.g. s3://bucket/sweeps")
        sync.add_argument("local_dir", help="local workspace folder")
        sync.add_argument("paths", nargs="*", help="only these paths inside the workspace (e.g. a sweep name)")
        sync.add_argument("--endpoint-url", default=None)
        if name == "push":
            sync.add_argument("--delete", action="store_true", help="remove remote files missing locally")
        sync.set_defaults(func=handler)

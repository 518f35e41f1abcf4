"""`hpo spec validate|resolve`: check a spec, or fill it from dataset roots and the parent job."""

from __future__ import annotations

import argparse
import sys

from hpo.spec.chain import resolve_job_chain
from hpo.spec.datasources import resolve_data_sources
from skillkit.skill_dir import ACTIONS, SkillDir
from skillkit.spec.loader import merge_spec, validate_spec
from skillkit.spec.yaml_io import dump_spec, dump_yaml


def _validate(args: argparse.Namespace) -> int:
    skill = SkillDir(args.skill_dir)
    spec = merge_spec(args.spec, args.action, args.overrides, skill)
    validate_spec(spec, args.action, skill, source=args.spec or f"<{args.action} template>")
    print(f"{args.spec or 'template'}: valid {args.action} spec")
    return 0


def _resolve(args: argparse.Namespace) -> int:
    skill = SkillDir(args.skill_dir)
    spec = merge_spec(args.spec, args.action, args.overrides, skill)
    if args.train_dataset or args.eval_dataset or args.inference_dataset:
        resolve_data_sources(
            spec, skill, args.action, train_datasets=args.train_dataset, eval_dataset=args.eval_dataset,
            inference_dataset=args.inference_dataset, dataset_type=args.dataset_type,
        )
    if args.parent or args.output_dir:
        resolve_job_chain(spec, skill, args.action, parent_dir=args.parent, output_dir=args.output_dir,
                          checkpoint=args.checkpoint)
    validate_spec(spec, args.action, skill, source=args.spec or f"<{args.action} template>",
                  check_mandatory=not args.allow_missing)
    if args.out:
        dump_spec(spec, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(dump_yaml(spec), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spec", help="validate specs; fill them from datasets and parent jobs")
    actions = parser.add_subparsers(dest="spec_command", metavar="ACTION")
    actions.required = True

    validate = actions.add_parser("validate", help="validate a spec (YAML + dotted overrides) for an action")
    validate.add_argument("-e", "--spec", default=None, help="spec YAML (default: the action's template)")
    validate.add_argument("--action", default="train", choices=ACTIONS)
    validate.add_argument("--skill-dir", default=None)
    validate.add_argument("overrides", nargs="*", help="dotted overrides such as train.num_epochs=10")
    validate.set_defaults(func=_validate)

    resolve = actions.add_parser("resolve", help="print the filled spec for an action")
    resolve.add_argument("--action", default="train", choices=ACTIONS)
    resolve.add_argument("-e", "--spec", default=None, help="spec YAML merged onto the action's template")
    resolve.add_argument("--skill-dir", default=None)
    resolve.add_argument("--train-dataset", default=None, help="train dataset root (folder or s3:// prefix)")
    resolve.add_argument("--eval-dataset", default=None, help="evaluation dataset root")
    resolve.add_argument("--inference-dataset", default=None, help="inference dataset root")
    resolve.add_argument("--dataset-type", default=None, choices=("coco", "coco_panoptic", "ade"),
                         help="dataset format (default: detected from a local root's files, else the spec's)")
    resolve.add_argument("--parent", default=None, help="the parent job's results folder")
    resolve.add_argument("--output-dir", default=None, help="this job's results folder")
    resolve.add_argument("--checkpoint", default=None,
                         help="parent checkpoint: 'best' (default; from the parent's status.json), 'latest', 'epoch=N', or a file name")
    resolve.add_argument("--allow-missing", action="store_true", help="do not fail on '???' values still unset")
    resolve.add_argument("--out", default=None, help="write the spec here instead of printing it")
    resolve.add_argument("overrides", nargs="*", help="dotted overrides such as train.num_epochs=10")
    resolve.set_defaults(func=_resolve)

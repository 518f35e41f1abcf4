"""`hpo schemas generate|check`: keep the committed schemas and templates in step with the config."""

from __future__ import annotations

import argparse

from hpo.skill.generate import stale_files, write_generated
from skillkit.errors import SchemaError
from skillkit.skill_dir import SkillDir


def _generate(args: argparse.Namespace) -> int:
    skill = SkillDir(args.skill_dir)
    written = write_generated(skill)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("all generated files are up to date")
    return 0


def _check(args: argparse.Namespace) -> int:
    skill = SkillDir(args.skill_dir)
    stale = stale_files(skill)
    if stale:
        names = ", ".join(str(path) for path in stale)
        raise SchemaError(f"stale generated file(s): {names}. Run 'hpo schemas generate' and commit the result.")
    print("schemas and templates are up to date")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schemas", help="generate or check the skill's schemas and spec templates")
    actions = parser.add_subparsers(dest="schemas_command", metavar="ACTION")
    actions.required = True
    for name, handler, text in (
        ("generate", _generate, "write schemas/, manifest.json and references/spec_template_*.yaml from the config dataclasses"),
        ("check", _check, "exit non-zero naming each generated file that is stale"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("--skill-dir", default=None, help="skill directory (default: this checkout)")
        sub.set_defaults(func=handler)

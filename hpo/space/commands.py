"""`hpo space show|compile|check|sample`: inspect, commit and try out the compiled search space.

- `show`: the space as a rich table (name, kind, range, scale, condition, default, why), YAML or JSON;
- `compile`: write `search_spaces/<model>_<action>.yaml` (the committed, diffable description);
- `check`: fail (exit 4) when that file is missing or differs from a fresh compilation (CI runs it);
- `sample -n N --seed S`: N sampled override sets, each checked against the search space and, with a
  skill dir, validated as a complete spec by `hpo.spec.load_spec`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpo.space.compile import compile_space
from hpo.space.reader import load_schema_file
from hpo.space.space import SearchSpace
from skillkit.errors import SchemaError, SearchSpaceError


def _schema_and_skill(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The schema to compile and the skill dir (None when only --schema is given)."""
    from skillkit.skill_dir import SkillDir

    if getattr(args, "schema", None):
        skill = SkillDir(args.skill_dir) if args.skill_dir else None
        return load_schema_file(args.schema), skill
    skill = SkillDir(args.skill_dir)
    return skill.schema(args.action), skill


def _compile(args: argparse.Namespace, schema: dict[str, Any]) -> SearchSpace:
    ranges = None
    if getattr(args, "ranges", None):
        try:
            ranges = yaml.safe_load(Path(args.ranges).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise SearchSpaceError(f"cannot read custom ranges file '{args.ranges}': {error}") from None
    return compile_space(
        schema,
        selection=args.param or None,
        custom_param_ranges=ranges,
        override_automl_disabled_params=args.override_disabled,
    )


def default_space_path(skill_path: Path, schema: dict[str, Any], action: str) -> Path:
    raw = schema.get("x_tao_schema")
    source: dict[str, Any] = raw if isinstance(raw, dict) else {}
    model = source.get("model") or source.get("network_arch") or "model"
    return skill_path / "search_spaces" / f"{model}_{action}.yaml"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _show(args: argparse.Namespace) -> int:
    schema, _ = _schema_and_skill(args)
    space = _compile(args, schema)
    if args.format == "yaml":
        print(space.to_yaml(), end="")
        return 0
    if args.format == "json":
        print(json.dumps(space.to_dict(), indent=2))
        return 0
    from rich.console import Console

    render_space(space, Console(width=args.width))
    return 0


#: Below this many columns the space is shown as one block per parameter, not one wide table.
WIDE_TABLE_COLUMNS = 160


def render_space(space: SearchSpace, console: Any) -> None:
    """The space for a person: a table on a wide terminal; on a narrow one (80 columns) one block per
    parameter -- name, kind, range, scale and default on one line, then its condition and the reasoning,
    indented and wrapped -- so names are never cut into pieces."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    title = f"search space ({len(space)} parameters{', conditional' if space.is_conditional else ''})"
    rows = [(p.name, p.kind, p.range_text(), p.scale if p.kind in ("float", "int") else "", _fmt(p.default),
             p.condition, p.why) for p in space.parameters]
    if console.width >= WIDE_TABLE_COLUMNS:
        table = Table(title=title)
        for column in ("name", "kind", "range", "scale", "condition", "default", "why"):
            table.add_column(column, overflow="fold")
        for name, kind, domain, scale, default, condition, why in rows:
            table.add_row(name, kind, domain, scale, condition, default, why)
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    name_width = max((len(row[0]) for row in rows), default=0)
    widths = [max((len(row[i]) for row in rows), default=0) for i in (1, 2, 3)]
    for name, kind, domain, scale, default, condition, why in rows:
        facts = "  ".join([kind.ljust(widths[0]), domain.ljust(widths[1]), scale.ljust(widths[2]),
                           f"default {default}" if default else ""]).rstrip()
        if name_width + 2 + len(facts) <= console.width:
            console.print(Text.assemble((name.ljust(name_width), "bold"), "  ", facts), overflow="fold")
        else:  # a long name gets its own line
            console.print(Text(name, style="bold"), overflow="fold")
            console.print(Padding(Text(facts), (0, 0, 0, 4), expand=False))
        for note in ([f"when: {condition}"] if condition else []) + ([why] if why else []):
            console.print(Padding(Text(note, style="dim"), (0, 0, 0, 4), expand=False))


def _compile_command(args: argparse.Namespace) -> int:
    schema, skill = _schema_and_skill(args)
    space = _compile(args, schema)
    out = Path(args.out) if args.out else default_space_path(skill.path if skill else Path.cwd(), schema, args.action)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(space.to_yaml())
    print(f"wrote {out} ({len(space)} parameters)", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    schema, skill = _schema_and_skill(args)
    space = _compile(args, schema)
    path = Path(args.file) if args.file else default_space_path(skill.path if skill else Path.cwd(), schema, args.action)
    if not path.is_file():
        raise SchemaError(f"compiled search space '{path}' does not exist; run 'hpo space compile' and commit it.")
    if path.read_text() != space.to_yaml():
        raise SchemaError(
            f"compiled search space '{path}' is stale: it differs from compiling the current {args.action} schema; "
            "run 'hpo space compile' and commit the result."
        )
    print(f"{path}: up to date")
    return 0


def _sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise SearchSpaceError(f"-n must be at least 1, got {args.n}.")
    schema, skill = _schema_and_skill(args)
    space = _compile(args, schema)
    rng = np.random.default_rng(args.seed)
    sets = []
    for _ in range(args.n):
        values = space.sample(rng, epoch_budget=args.epoch_budget)
        space.check(values, epoch_budget=args.epoch_budget)
        overrides = space.to_overrides(values)
        if skill is not None:
            from skillkit.spec import load_spec

            load_spec(None, args.action, overrides, skill, check_mandatory=False, check_classes=False)
        sets.append((values, overrides))
    if args.format == "json":
        print(json.dumps([values for values, _ in sets], indent=2))
    elif args.format == "yaml":
        print(yaml.safe_dump([values for values, _ in sets], sort_keys=False), end="")
    else:
        for index, (_, overrides) in enumerate(sets):
            print(f"# sample {index}")
            print(" ".join(overrides))
    checked = "search space and spec validation" if skill is not None else "search space rules"
    print(f"{args.n} sample(s), seed {args.seed}: all pass {checked}", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    from skillkit.skill_dir import ACTIONS

    parser.add_argument("--skill-dir", default=None, help="skill directory (default: found from the working dir)")
    parser.add_argument("--action", default="train", choices=ACTIONS)
    parser.add_argument("--schema", default=None, help="compile this schema file instead of the skill dir's")
    parser.add_argument("--param", action="append", default=[],
                        help="search this dotted parameter (repeatable; default: the schema's automl_default_parameters)")
    parser.add_argument("--ranges", default=None, help="YAML file of custom_param_ranges (name: {min, max, options, weights, ...})")
    parser.add_argument("--override-disabled", action="store_true",
                        help="allow searching parameters listed in automl_disabled_parameters")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="compile, show, check and sample the search space")
    commands = parser.add_subparsers(dest="space_command", metavar="ACTION")
    commands.required = True

    show = commands.add_parser("show", help="print the compiled search space")
    _common(show)
    show.add_argument("--format", default="table", choices=("table", "yaml", "json"))
    show.add_argument("--width", type=int, default=None, help="table width in columns (default: the terminal's)")
    show.set_defaults(func=_show)

    compile_parser = commands.add_parser("compile", help="write search_spaces/<model>_<action>.yaml")
    _common(compile_parser)
    compile_parser.add_argument("--out", default=None, help="output file (default: <skill dir>/search_spaces/<model>_<action>.yaml)")
    compile_parser.set_defaults(func=_compile_command)

    check = commands.add_parser("check", help="fail when the committed compiled search space is stale")
    _common(check)
    check.add_argument("--file", default=None, help="compiled file to check (default: as for compile)")
    check.set_defaults(func=_check)

    sample = commands.add_parser("sample", help="print N sampled override sets, each validated")
    _common(sample)
    sample.add_argument("-n", type=int, default=5, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--epoch-budget", type=int, default=None, help="epochs each trial trains (places milestones)")
    sample.add_argument("--format", default="overrides", choices=("overrides", "yaml", "json"))
    sample.set_defaults(func=_sample)

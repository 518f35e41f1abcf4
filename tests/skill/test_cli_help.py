"""Both CLIs list their subcommands in --help, quickly: the top-level help imports no heavy library, and each
command's help line in the CLI's table is the one its module registers."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "ray", "mlflow", "boto3", "optuna", "onnxruntime", "matplotlib", "numpy")


def _help(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    return result.stdout


def test_hpo_help_lists_subcommands() -> None:
    text = _help("hpo.cli")
    for command in ("schemas", "spec", "plan", "run", "resume", "status", "promote", "storage"):
        assert command in text


def test_mask2former_help_runs() -> None:
    text = _help("mask2former.cli")
    for command in ("train", "evaluate", "inference", "export", "quantize", "gen_trt_engine", "dataset"):
        assert command in text


@pytest.mark.parametrize("cli", ["hpo.cli", "mask2former.cli"])
def test_top_level_help_imports_no_heavy_library(cli: str) -> None:
    probe = (
        "import sys, contextlib, io\n"
        f"import {cli} as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"`{cli} --help` imported {result.stdout.strip()}"


@pytest.mark.parametrize("cli", ["hpo.cli", "mask2former.cli"])
def test_each_help_line_is_the_one_its_module_registers(cli: str) -> None:
    module = __import__(cli, fromlist=["COMMANDS"])
    full = module.build_parser([], load_all=True)
    choices = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {action.dest: action.help for action in choices._choices_actions}
    assert registered == {command.name: command.help for command in module.COMMANDS}


def test_startup_benchmark_quick_form(tmp_path) -> None:
    """The tiny form of benchmarks/cli_startup.py (CI runs every benchmark script)."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "cli_startup.py"
    out = tmp_path / "cli_startup.json"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], check=True, capture_output=True)
    import json

    medians = json.loads(out.read_text())["median_s"]["this tree"]
    assert set(medians) >= {"hpo --help", "mask2former --help"}

"""Both CLIs list their subcommands in --help."""

from __future__ import annotations

import subprocess
import sys


def _help(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    return result.stdout


def test_hpo_help_lists_subcommands() -> None:
    text = _help("hpo.cli")
    for command in ("schemas", "spec"):
        assert command in text


def test_mask2former_help_runs() -> None:
    assert "mask2former" in _help("mask2former.cli")

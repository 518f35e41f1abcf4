"""Registers `mask2former export`, `mask2former quantize` and `mask2former gen_trt_engine`."""

from __future__ import annotations

import argparse

from mask2former.deploy import gen_trt_engine
from mask2former.export import command as export_command
from mask2former.quantize import command as quantize_command


def register(subparsers: argparse._SubParsersAction) -> None:
    export_command.register(subparsers)
    quantize_command.register(subparsers)
    gen_trt_engine.register(subparsers)

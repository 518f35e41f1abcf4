"""Registers `mask2former train`, `mask2former evaluate` and `mask2former inference`."""

from __future__ import annotations

import argparse

from mask2former.actions import evaluate, inference, train


def register(subparsers: argparse._SubParsersAction) -> None:
    train.register(subparsers)
    evaluate.register(subparsers)
    inference.register(subparsers)

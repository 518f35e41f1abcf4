"""What the export / quantize / gen_trt_engine actions and the deploy evaluate / inference runs share: status
lines and CLI error handling.

Each action writes `results_dir/status.json` like the trainer (STARTED, then SUCCESS with a `kpi`, or
FAILURE with `error_class` oom|data|spec|internal), so the engine and the job chain read every action
the same way. User mistakes end the CLI with `error: <message>` and the error's exit code; failed checks
(`HpoError` that are not user errors, e.g. ONNX Runtime disagreeing with PyTorch) end the same way with
their own exit code (1) instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mask2former.training.failures import classify
from skillkit.errors import HpoError, UserError
from skillkit.status.writer import ERROR, FAILURE, STARTED, StatusWriter


@contextlib.contextmanager
def recorded(results_dir: str | Path, start_message: str) -> Iterator[StatusWriter]:
    """Write STARTED now and a FAILURE line (with its error class) if the block raises."""
    writer = StatusWriter(results_dir, num_epochs=None)
    writer.write(STARTED, start_message)
    try:
        yield writer
    except BaseException as error:
        writer.write(FAILURE, f"{type(error).__name__}: {error}", verbosity=ERROR, error_class=classify(error))
        raise


def cli_handler(action: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """Wrap an action for `set_defaults(func=...)`: UserErrors propagate to the CLI's own handler; other
    project errors (failed verification...) print `error: <message>` and return their exit code."""

    def handle(args: argparse.Namespace) -> int:
        try:
            action(args)
        except UserError:
            raise
        except HpoError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
        return 0

    return handle

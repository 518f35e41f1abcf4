"""Run a Python snippet, or the `hpo` command line, in this process and SIGKILL the process at the moment it
is about to execute the first SQL statement that starts with PREFIX: the way a driver dies at a chosen point
of creating its Optuna or MLflow SQLite file, repeatably.

    python kill_during_sql.py PREFIX --code "python source"
    python kill_during_sql.py PREFIX --hpo run SWEEP.yaml --no-live
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

import sqlalchemy
from sqlalchemy import event


def main() -> None:
    prefix, mode, *rest = sys.argv[1:]

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def _die_before(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().startswith(prefix):
            sys.stderr.write(f"killed before: {statement.strip().splitlines()[0]}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    if mode == "--code":
        exec(compile(rest[0], "<snippet>", "exec"), {"__name__": "__snippet__"})  # noqa: S102 - test driver
    elif mode == "--hpo":
        sys.argv = ["hpo", *rest]
        runpy.run_module("hpo.cli", run_name="__main__")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

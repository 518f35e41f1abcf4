"""Progress bars for large transfers, shown only where a person is watching.

A sweep driver running under a scheduler writes logs, not terminals; a progress bar there is noise. A
bar appears only for transfers of at least `min_bytes` and only when the console is a terminal, unless
the caller forces it (`enabled=True`, used by tests with a recording console).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

DEFAULT_MIN_BYTES = 8 * 1024 * 1024


class TransferProgress:
    """Factory of per-transfer byte callbacks, backed by a rich progress bar when appropriate."""

    def __init__(
        self,
        *,
        enabled: bool | None = None,
        min_bytes: int = DEFAULT_MIN_BYTES,
        console: Console | None = None,
    ) -> None:
        self._console = console or Console(stderr=True)
        self._enabled = self._console.is_terminal if enabled is None else enabled
        self._min_bytes = min_bytes

    def shows(self, total_bytes: int) -> bool:
        """Whether a transfer of `total_bytes` gets a bar."""
        return self._enabled and total_bytes >= self._min_bytes

    @contextlib.contextmanager
    def track(self, description: str, total_bytes: int) -> Iterator[Callable[[int], None]]:
        """Yield a callback taking byte increments (boto3's `Callback` signature); it may be called from
        transfer threads, which rich's `Progress.advance` tolerates (it takes its own lock)."""
        if not self.shows(total_bytes):
            yield _ignore
            return
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        with progress:
            task = progress.add_task(description, total=total_bytes)
            yield lambda increment: progress.advance(task, increment)


def _ignore(_increment: int) -> None:
    """The callback used when no bar is shown."""

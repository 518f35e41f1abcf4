"""An inter-process file lock (POSIX `flock`), for caches shared by concurrent sweeps and workers.

`flock` locks are released by the kernel when the holder dies, so a crashed process never leaves a
stale lock behind; that is why we use them instead of "create a lock file if absent" schemes.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from skillkit.errors import StorageError


class FileLock:
    """Exclusive lock on `path` (created if needed). Use as a context manager.

    `timeout` seconds (None: wait forever) bounds the wait; a timeout raises `StorageError` naming the
    lock file, which usually means another process is downloading the same large object.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float | None = None, poll: float = 0.1) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    os.close(fd)
                    raise StorageError(
                        f"timed out after {self.timeout:g}s waiting for the lock {self.path}: another "
                        "process holds it (it may be staging the same data)."
                    ) from None
                time.sleep(self.poll)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

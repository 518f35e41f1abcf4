"""The local tracking journal: every tracking operation, in order, on disk before it is sent anywhere.

Why a journal: the sweep must never wait for (or die with) a tracking server. Each operation is appended as
one JSON line to `<sweep_dir>/tracking/journal.jsonl` and only then applied to MLflow; `state.json` records
how far application got and the MLflow ids the operations produced (run ids by local run key, the experiment
id, model versions). When the server is away, operations simply stay pending; when it returns (or when any
later command opens the sweep) they are applied in order. Operations are written so that applying one twice
has the same effect as once, which makes a crash between "applied" and "state saved" harmless.

Files that an operation uploads (specs, status logs, plots) are snapshotted into `tracking/blobs/` when the
operation is journaled, because the original may change (status.json grows) or be deleted (checkpoint
retention) before the server comes back. Large files that are kept anyway (the promoted checkpoint) are
referenced in place.

Several processes may share a journal (the sweep driver, `hpo promote`, `hpo sync-tracking`): appends and
replays hold an exclusive `fcntl` lock on `tracking/.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JOURNAL_DIRNAME = "tracking"
JOURNAL_FILENAME = "journal.jsonl"
STATE_FILENAME = "state.json"
SNAPSHOT_LIMIT_BYTES = 64 * 1024 * 1024


class Journal:
    """Append-only operation log plus application state for one sweep directory."""

    def __init__(self, sweep_dir: str | os.PathLike[str]) -> None:
        self.sweep_dir = Path(sweep_dir).resolve()
        self.directory = self.sweep_dir / JOURNAL_DIRNAME
        self.path = self.directory / JOURNAL_FILENAME
        self.state_path = self.directory / STATE_FILENAME
        self.blob_dir = self.directory / "blobs"
        self._lock_depth = 0
        self._lock_file: Any = None
        self._cached_size = -1
        self._cached_seq = -1
        self._journal_id: str | None = None
        self._index_offset = 0
        self._created: set[str] = set()
        self._lifecycle: dict[str, str] = {}

    # -- locking ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the journal's exclusive lock (re-entrant within this object)."""
        if self._lock_depth == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / ".lock", "a+")
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    # -- entries ---------------------------------------------------------------------------------------
    def entries(self, offset: int = 0) -> list[dict[str, Any]]:
        """Every complete entry from byte `offset` on, in order, each with its end offset under `_end`.

        A torn last line (a crash mid-append) is ignored; the next append starts a fresh line after it.
        """
        if not self.path.is_file():
            return []
        entries = []
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            position = offset
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                position += len(raw)
                try:
                    entry = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                entry["_end"] = position
                entries.append(entry)
        return entries

    def _last_seq(self) -> int:
        """Sequence number of the last entry, cached against the file's size (appends are the only writes)."""
        size = self.path.stat().st_size if self.path.is_file() else 0
        if self._cached_size != size:
            entries = self.entries()
            self._cached_seq = int(entries[-1]["seq"]) if entries else -1
            self._cached_size = size
        return self._cached_seq

    @property
    def journal_id(self) -> str:
        """A random id fixed when the journal is created; it makes run keys unique across workspaces."""
        if self._journal_id is None:
            with self.locked():
                if self._last_seq() < 0:
                    self._write({"seq": 0, "op": "header", "journal_id": uuid.uuid4().hex, "created": time.time()})
                with open(self.path, "rb") as handle:
                    header = json.loads(handle.readline())
                if header.get("op") != "header":
                    raise RuntimeError(f"tracking journal '{self.path}' does not start with its header line")
                self._journal_id = str(header["journal_id"])
        return self._journal_id

    def append(self, operation: dict[str, Any]) -> int:
        """Write one operation durably and return its sequence number."""
        with self.locked():
            if self._last_seq() < 0:
                self.journal_id  # noqa: B018 - the header comes first
            seq = self._last_seq() + 1
            self._write({"seq": seq, **operation})
            return seq

    def _write(self, entry: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        with open(self.path, "ab") as handle:
            if handle.tell() and not self._ends_with_newline():
                handle.write(b"\n")  # seal a torn line left by a crash so this entry parses on its own
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self._cached_size = self.path.stat().st_size
        self._cached_seq = int(entry["seq"])

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    # -- state -----------------------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text())
                if isinstance(state, dict):
                    state.setdefault("runs", {})
                    state.setdefault("model_versions", {})
                    state.setdefault("skipped", [])
                    state.setdefault("applied", 0)
                    return state
            except json.JSONDecodeError:
                pass  # a torn state file only means "replay from the start", which is safe
        return {"applied": 0, "experiment_id": None, "runs": {}, "model_versions": {}, "skipped": []}

    def save_state(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(temporary, self.state_path)

    def pending(self, state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Operations not applied yet, in order (read from the byte offset the state remembers)."""
        state = state if state is not None else self.load_state()
        applied = int(state.get("applied", 0))
        offset = int(state.get("offset", 0))
        entries = self.entries(offset)
        if offset and (not entries or int(entries[0]["seq"]) != applied + 1):
            entries = self.entries()  # the remembered offset does not line up: rescan from the start
        return [entry for entry in entries if entry.get("op") != "header" and int(entry["seq"]) > applied]

    def run_keys(self) -> set[str]:
        """Local keys of every run the journal creates (applied or not)."""
        self._scan()
        return set(self._created)

    def open_runs(self) -> set[str]:
        """Keys of runs whose last lifecycle operation is a create or reopen (not a terminate)."""
        self._scan()
        return {key for key, op in self._lifecycle.items() if op != "terminate"}

    def _scan(self) -> None:
        """Bring the in-memory index of run lifecycles up to date with what other writers appended."""
        size = self.path.stat().st_size if self.path.is_file() else 0
        if size == self._index_offset:
            return
        if size < self._index_offset:
            self._index_offset, self._created, self._lifecycle = 0, set(), {}
        for entry in self.entries(self._index_offset):
            op = entry.get("op")
            if op in ("create_run", "reopen_run", "terminate"):
                self._lifecycle[str(entry["key"])] = op
                if op == "create_run":
                    self._created.add(str(entry["key"]))
            self._index_offset = int(entry["_end"])

    # -- file snapshots ----------------------------------------------------------------------------------
    def snapshot_bytes(self, data: bytes, name: str) -> str:
        """Store `data` as a blob named `name`; returns its path relative to the journal directory."""
        digest = hashlib.sha256(data).hexdigest()[:20]
        target = self.blob_dir / digest / name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{name}.tmp{os.getpid()}")
            temporary.write_bytes(data)
            os.replace(temporary, target)
        return str(target.relative_to(self.directory))

    def snapshot_file(self, path: Path, name: str | None = None) -> str:
        """Snapshot a file (copied when small, referenced in place when large); returns the path to journal."""
        path = Path(path)
        if path.stat().st_size > SNAPSHOT_LIMIT_BYTES:
            return str(path.resolve())
        return self.snapshot_bytes(path.read_bytes(), name or path.name)

    def resolve(self, stored: str) -> Path:
        """The local file behind a journaled path (blob-relative or absolute)."""
        candidate = Path(stored)
        return candidate if candidate.is_absolute() else self.directory / candidate

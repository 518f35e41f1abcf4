"""Sweep workspaces on S3: a local working copy kept in step with an `s3://` prefix.

Trials write checkpoints, `status.json` and `trial.json` to local disk (the trainer knows nothing of S3).
`WorkspaceMirror.push` uploads what changed since the last push, and `pull` rebuilds the workspace in a
fresh folder on another machine so a sweep can resume there.

What changed is judged from a small index (`.hpo_mirror.json` in the local folder) of the size and
modification time each file had when it was last pushed or pulled, so a push of a big workspace only
uploads new checkpoints and rewritten JSON files, without listing the bucket. Symlinks (the trainer's
`mask2former_model_latest.pth`) cannot be stored in S3; they are recorded in `_hpo_links.json` at the
remote root and re-created by `pull`.

One driver pushes a workspace at a time (the engine holds `driver.lock`); `driver.lock` itself, the index
and temporary files are never mirrored. SQLite files (Optuna's `state/optuna.db`) are uploaded as a
consistent snapshot (SQLite's backup API), since the backend may be writing to them during a push.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo.storage.router import Storage
from hpo.storage.uri import is_s3_uri, join, parse_s3_uri
from skillkit.errors import StorageError

logger = logging.getLogger(__name__)

INDEX_FILE = ".hpo_mirror.json"
LINKS_FILE = "_hpo_links.json"
DEFAULT_EXCLUDE: tuple[str, ...] = (INDEX_FILE, LINKS_FILE, "driver.lock", "*.part", "*.tmp", "__pycache__")


@dataclass(frozen=True)
class SyncReport:
    """What one push or pull did: files transferred (and their bytes), skipped as unchanged, deleted."""

    transferred: int
    bytes: int
    skipped: int
    deleted: int
    links: int
    seconds: float


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def default_mirror_dir(remote_uri: str) -> Path:
    """Where a remote workspace is mirrored when the user names no local folder."""
    digest = hashlib.sha256(remote_uri.rstrip("/").encode()).hexdigest()[:16]
    root = os.environ.get("HPO_WORKSPACE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "hpo" / "workspaces"
    return base / f"{parse_s3_uri(remote_uri).name or 'workspace'}-{digest}"


class WorkspaceMirror:
    """A local folder mirrored to `remote_uri` (an `s3://` prefix, or another local folder).

    `push(paths)` uploads files under the given relative paths (files or folders; None: everything)
    that changed since they were last synced; `pull(paths)` downloads remote files that differ from the
    local copy. Both are idempotent and safe to repeat after a crash.
    """

    def __init__(
        self,
        local_dir: str | os.PathLike,
        remote_uri: str,
        *,
        storage: Storage | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
    ) -> None:
        self.local_dir = Path(local_dir).expanduser()
        self.remote_uri = remote_uri.rstrip("/") if is_s3_uri(remote_uri) else str(Path(remote_uri).expanduser())
        if is_s3_uri(self.remote_uri) and not parse_s3_uri(self.remote_uri).key:
            raise StorageError(
                f"workspace URI {remote_uri!r} names a whole bucket; give a prefix such as "
                f"{self.remote_uri}/sweeps so other data in the bucket is never touched."
            )
        self.storage = storage or Storage()
        self.exclude = tuple(exclude)
        self._lock = threading.Lock()

    # -- index -----------------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, dict]:
        try:
            return json.loads((self.local_dir / INDEX_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write_index(self, index: dict[str, dict]) -> None:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".hpo_mirror.", suffix=".tmp", dir=self.local_dir)
        with os.fdopen(fd, "w") as handle:
            json.dump(index, handle, sort_keys=True)
        os.replace(temporary, self.local_dir / INDEX_FILE)

    def _excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        return any(fnmatch.fnmatch(part, pattern) for pattern in self.exclude for part in parts)

    def _relative(self, path: str | os.PathLike) -> str:
        candidate = Path(path)
        if candidate.is_absolute():
            try:
                candidate = candidate.relative_to(self.local_dir)
            except ValueError:
                raise StorageError(f"cannot sync {path}: it is not inside the workspace {self.local_dir}.") from None
        text = candidate.as_posix().strip("/")
        if ".." in text.split("/"):
            raise StorageError(f"cannot sync {path}: paths may not contain '..'.")
        return "" if text == "." else text

    def _local_files(self, scopes: Iterable[str]) -> tuple[dict[str, Path], dict[str, str]]:
        """Regular files and symlinks (relative path -> path / link target) under the given scopes."""
        files: dict[str, Path] = {}
        links: dict[str, str] = {}
        for scope in scopes:
            for path in self._walk(self.local_dir / scope if scope else self.local_dir):
                relative = path.relative_to(self.local_dir).as_posix()
                if self._excluded(relative):
                    continue
                if path.is_symlink():
                    target = self._link_target(path)
                    if target is not None:
                        links[relative] = target
                elif path.is_file():
                    files[relative] = path
        return files, links

    @staticmethod
    def _walk(start: Path) -> Iterable[Path]:
        """Files and symlinks (to files or folders) under `start`, without following symlinked folders."""
        if start.is_symlink() or start.is_file():
            yield start
            return
        if not start.is_dir():
            return
        for folder, dirnames, filenames in os.walk(start):
            for name in dirnames:
                if (Path(folder) / name).is_symlink():
                    yield Path(folder) / name
            for name in filenames:
                yield Path(folder) / name

    def _link_target(self, link: Path) -> str | None:
        """The link's target relative to the link's folder, if it stays inside the workspace."""
        raw = os.readlink(link)
        absolute = (link.parent / raw).resolve() if not os.path.isabs(raw) else Path(raw).resolve()
        root = self.local_dir.resolve()
        if not absolute.is_relative_to(root):
            logger.warning("not mirroring the link %s: it points outside the workspace (%s)", link, raw)
            return None
        return os.path.relpath(absolute, link.parent.resolve())

    def _remote(self, relative: str) -> str:
        return join(self.remote_uri, relative)

    # -- push ------------------------------------------------------------------------------------------

    def push(self, paths: Sequence[str | os.PathLike] | None = None, *, delete: bool = False) -> SyncReport:
        """Upload what changed under `paths` (relative to the workspace; None: all of it).

        With `delete`, remote files under those paths that no longer exist locally are removed (e.g.
        checkpoints the engine pruned).
        """
        started = time.monotonic()
        scopes = [""] if paths is None else [self._relative(path) for path in paths]
        with self._lock:
            index = self._read_index()
            files, links = self._local_files(scopes)
            transferred = skipped = total = deleted = 0
            try:
                for relative, path in sorted(files.items()):
                    st = path.stat()
                    known = index.get(relative)
                    if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
                        skipped += 1
                        continue
                    self._upload(path, self._remote(relative))
                    index[relative] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
                    transferred += 1
                    total += st.st_size
                if delete:
                    deleted = self._delete_remote_extras(scopes, set(files), index)
                self._push_links(scopes, links)
            finally:
                self._write_index(index)
        report = SyncReport(transferred, total, skipped, deleted, len(links), time.monotonic() - started)
        logger.info("pushed %s to %s: %s", self.local_dir, self.remote_uri, report)
        return report

    def _upload(self, path: Path, location: str) -> None:
        """Upload one file; SQLite databases (Optuna's study) as a consistent snapshot taken with SQLite's
        backup API, since the backend may be writing to them while we read."""
        if not _is_sqlite(path):
            self.storage.upload(path, location)
            return
        with tempfile.TemporaryDirectory() as folder:
            snapshot = Path(folder) / path.name
            try:
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
                try:
                    target = sqlite3.connect(snapshot)
                    try:
                        source.backup(target)
                    finally:
                        target.close()
                finally:
                    source.close()
            except sqlite3.Error as error:
                raise StorageError(f"cannot snapshot the SQLite database {path} for upload: {error}.") from None
            self.storage.upload(snapshot, location)

    def _delete_remote_extras(self, scopes: list[str], present: set[str], index: dict[str, dict]) -> int:
        deleted = 0
        for scope in scopes:
            base = self._remote(scope) if scope else self.remote_uri
            for info in self.storage.list(base):
                relative = self._remote_relative(info.uri)
                if relative in present or self._excluded(relative):
                    continue
                self.storage.delete(info.uri)
                index.pop(relative, None)
                deleted += 1
        return deleted

    def _remote_relative(self, uri: str) -> str:
        if is_s3_uri(self.remote_uri):
            prefix = parse_s3_uri(self.remote_uri)
            return uri[len(f"s3://{prefix.bucket}/{prefix.dir_prefix}"):]
        return Path(uri).relative_to(self.remote_uri).as_posix()

    def _read_remote_links(self) -> dict[str, str]:
        location = self._remote(LINKS_FILE)
        if not self.storage.exists(location):
            return {}
        with tempfile.TemporaryDirectory() as folder:
            self.storage.download(location, Path(folder) / LINKS_FILE)
            return json.loads((Path(folder) / LINKS_FILE).read_text())

    def _push_links(self, scopes: list[str], links: dict[str, str]) -> None:
        """Merge the symlinks under `scopes` into the remote links file (only if something changed)."""
        current = self._read_remote_links()
        merged = {
            path: target for path, target in current.items()
            if not any(scope == "" or path == scope or path.startswith(f"{scope}/") for scope in scopes)
        }
        merged.update(links)
        if merged == current:
            return
        with tempfile.TemporaryDirectory() as folder:
            staged = Path(folder) / LINKS_FILE
            staged.write_text(json.dumps(merged, indent=2, sort_keys=True))
            self.storage.upload(staged, self._remote(LINKS_FILE))

    # -- pull ------------------------------------------------------------------------------------------

    def pull(self, paths: Sequence[str | os.PathLike] | None = None) -> SyncReport:
        """Download remote files under `paths` (None: all) that differ from the local copy, and re-create
        the recorded symlinks. Raises `StorageError` when the remote workspace holds nothing there."""
        started = time.monotonic()
        scopes = [""] if paths is None else [self._relative(path) for path in paths]
        with self._lock:
            index = self._read_index()
            transferred = skipped = total = 0
            remote: list = []
            for scope in scopes:
                remote.extend(self.storage.list(self._remote(scope) if scope else self.remote_uri))
            try:
                for info in remote:
                    relative = self._remote_relative(info.uri)
                    if self._excluded(relative):
                        continue
                    path = self.local_dir / relative
                    known = index.get(relative)
                    if known and path.is_file() and not path.is_symlink():
                        st = path.stat()
                        if (known.get("etag") == info.etag and known.get("size") == st.st_size
                                and known.get("mtime_ns") == st.st_mtime_ns):
                            skipped += 1
                            continue
                    if path.is_symlink():
                        path.unlink()
                    self.storage.download(info.uri, path)
                    st = path.stat()
                    index[relative] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "etag": info.etag}
                    transferred += 1
                    total += info.size
                links = self._restore_links(scopes)
            finally:
                self._write_index(index)
        if not remote and paths is None:
            raise StorageError(f"cannot pull the workspace {self.remote_uri}: nothing is stored there.")
        report = SyncReport(transferred, total, skipped, 0, links, time.monotonic() - started)
        logger.info("pulled %s into %s: %s", self.remote_uri, self.local_dir, report)
        return report

    def _restore_links(self, scopes: list[str]) -> int:
        restored = 0
        for relative, target in self._read_remote_links().items():
            if not any(scope == "" or relative == scope or relative.startswith(f"{scope}/") for scope in scopes):
                continue
            if ".." in relative.split("/") or os.path.isabs(target):
                logger.warning("ignoring the recorded link %s -> %s: it leaves the workspace", relative, target)
                continue
            link = self.local_dir / relative
            resolved = (link.parent / target).resolve()
            if not resolved.is_relative_to(self.local_dir.resolve()):
                logger.warning("ignoring the recorded link %s -> %s: it leaves the workspace", relative, target)
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                if link.is_symlink() and os.readlink(link) == target:
                    continue
                link.unlink()
            link.symlink_to(target)
            restored += 1
        return restored

"""The local-filesystem backend, so that callers never branch on "is this S3?".

Local locations are plain paths (`~` expanded; a `file://` prefix is accepted and dropped). The ETag of a
local file is derived from its modification time and size: cheap, and it changes whenever the file is
rewritten, which is all the staging cache and the workspace mirror need from it.
"""

from __future__ import annotations

import builtins
import os
import shutil
import uuid
from pathlib import Path

from hpo.storage.base import ObjectInfo, StorageBackend
from skillkit.errors import StorageError


def local_path(location: str | os.PathLike) -> Path:
    """The filesystem path a local location names."""
    text = os.fspath(location)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return Path(text).expanduser()


def _info(path: Path, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        uri=str(path), size=st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}", modified=st.st_mtime
    )


def atomic_copy(source: Path, destination: Path) -> None:
    """Copy a file so that `destination` appears complete or not at all (temp name + rename)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


class LocalBackend(StorageBackend):
    """Local paths (see `StorageBackend` for the contract)."""

    def stat(self, location: str) -> ObjectInfo:
        path = local_path(location)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise StorageError(f"cannot read {path}: the file does not exist.") from None
        except PermissionError:
            raise StorageError(f"cannot read {path}: permission denied.") from None
        if path.is_dir():
            raise StorageError(f"cannot stat {path} as a file: it is a directory.")
        return _info(path, st)

    def exists(self, location: str) -> bool:
        return local_path(location).is_file()

    def list(self, location: str) -> list[ObjectInfo]:
        root = local_path(location)
        if not root.exists():
            return []
        if not root.is_dir():
            raise StorageError(f"cannot list {root}: it is a file, not a directory.")
        found = []
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath) / name
                if path.is_file():  # skips dangling symlinks, sockets and the like
                    found.append(_info(path, path.stat()))
        return sorted(found, key=lambda info: info.uri)

    def entries(self, location: str) -> builtins.list[str]:
        root = local_path(location)
        if not root.is_dir():
            if root.exists():
                raise StorageError(f"cannot list {root}: it is a file, not a directory.")
            return []
        return sorted(path.name + ("/" if path.is_dir() else "") for path in root.iterdir())

    def download(self, location: str, destination: Path) -> ObjectInfo:
        info = self.stat(location)
        try:
            atomic_copy(local_path(location), Path(destination))
        except OSError as error:
            raise StorageError(f"cannot copy {location} to {destination}: {error.strerror or error}.") from None
        return info

    def upload(self, source: Path, location: str) -> None:
        source = Path(source)
        if not source.is_file():
            raise StorageError(f"cannot upload {source} to {location}: the local file does not exist.")
        try:
            atomic_copy(source, local_path(location))
        except OSError as error:
            raise StorageError(f"cannot copy {source} to {location}: {error.strerror or error}.") from None

    def delete(self, location: str, *, recursive: bool = False) -> int:
        path = local_path(location)
        if path.is_dir() and not path.is_symlink():
            if not recursive:
                raise StorageError(f"cannot delete {path}: it is a directory (pass recursive=True).")
            count = sum(len(files) for _d, _s, files in os.walk(path))
            shutil.rmtree(path)
            return count
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1

"""The contract every storage backend (local filesystem, S3) fulfils.

Locations are strings: a local path, or an `s3://bucket/key` URI for the S3 backend. A backend is
stateless apart from its client and may be shared by threads; it is not shared across processes (each
process builds its own, as boto3 clients must not cross a fork).

Contract, for every method:
- Failures raise `skillkit.errors.StorageError` whose message names the location, the operation and the cause
  in words, with no credentials in it. Transient failures (throttling, 5xx, dropped connections) are
  retried with backoff before they become a `StorageError`; permanent ones (missing, denied) are not.
- `stat` describes one object (a file); `list` describes every object below a directory/prefix,
  recursively, sorted by location. Directories themselves are not objects. `entries` names what sits
  directly in a directory/prefix, as `ls` shows a folder (sub-folders end with "/").
- `download` and `upload` are atomic at the destination: the final name appears only once the content is
  complete, so a crash never leaves a half-written file behind under the real name.
"""

from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    """What is known about one stored object.

    `etag` identifies the content version: S3's ETag (quotes stripped; for multipart uploads it is not an
    MD5 but still changes whenever the object is rewritten), or for local files a tag derived from
    modification time and size. `modified` is seconds since the epoch.
    """

    uri: str
    size: int
    etag: str
    modified: float


class StorageBackend(abc.ABC):
    """One kind of location (local or S3). See the module docstring for the contract."""

    @abc.abstractmethod
    def stat(self, location: str) -> ObjectInfo:
        """Size, ETag and modification time of one object; `StorageError` if it does not exist."""

    @abc.abstractmethod
    def exists(self, location: str) -> bool:
        """Whether an object exists there (a missing bucket is an error, not False)."""

    @abc.abstractmethod
    def list(self, location: str) -> list[ObjectInfo]:
        """Every object below the directory/prefix `location`, recursively, sorted by URI."""

    def entries(self, location: str) -> builtins.list[str]:
        """Names directly below the directory/prefix `location`, sorted: files as they are, sub-folders with a
        trailing "/" (empty when nothing is there). Derived from `list`; backends may answer faster."""
        prefix = location.rstrip("/") + "/"
        names = set()
        for info in self.list(location):
            rest = info.uri[len(prefix):] if info.uri.startswith(prefix) else info.uri.rsplit("/", 1)[-1]
            head, slash, _ = rest.partition("/")
            names.add(head + slash)
        return sorted(names)

    @abc.abstractmethod
    def download(self, location: str, destination: Path) -> ObjectInfo:
        """Copy one object to the local file `destination` (parents created); returns what was read."""

    @abc.abstractmethod
    def upload(self, source: Path, location: str) -> None:
        """Copy the local file `source` to `location`, replacing any object there."""

    @abc.abstractmethod
    def delete(self, location: str, *, recursive: bool = False) -> int:
        """Remove one object (or, with `recursive`, everything below a prefix); returns how many were
        removed. Removing something that does not exist is not an error."""

"""What a data source is before we fetch it: one object, a prefix of objects, a local file or folder.

Specs point at data with plain strings. `s3://b/data/train/images.tar.gz` is one object;
`s3://b/data/train/images/` is a folder of objects (a prefix). We find out with one HEAD request and,
only if that says 404, one listing, and describe the result with a version tag (the object's ETag, or a
digest over the listing's keys, ETags and sizes) so a cache can tell whether anything changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hpo.storage.failures import is_not_found
from hpo.storage.local import local_path
from hpo.storage.router import Storage
from hpo.storage.uri import is_s3_uri, parse_s3_uri
from skillkit.archive import is_archive_name
from skillkit.errors import StorageError

OBJECT = "object"
PREFIX = "prefix"
LOCAL_FILE = "local-file"
LOCAL_DIR = "local-dir"


@dataclass(frozen=True)
class SourceInfo:
    """One data source as found in storage.

    `kind` is one of OBJECT, PREFIX, LOCAL_FILE, LOCAL_DIR; `size` the total bytes; `objects` how many
    objects/files make it up; `version` changes whenever the content does (ETag for an object).
    """

    uri: str
    kind: str
    size: int
    objects: int
    version: str

    @property
    def is_archive(self) -> bool:
        """An archive we extract (by name; folders never are)."""
        return self.kind in (OBJECT, LOCAL_FILE) and is_archive_name(self.uri.rstrip("/"))


def _listing_version(entries: list[tuple[str, str, int]]) -> str:
    digest = hashlib.sha256()
    for key, etag, size in entries:
        digest.update(f"{key}\t{etag}\t{size}\n".encode())
    return f"listing-{digest.hexdigest()[:32]}"


def describe_source(uri: str, storage: Storage) -> SourceInfo:
    """Find what `uri` names; `StorageError` (naming the URI and the cause) when it cannot be read."""
    if is_s3_uri(uri):
        return _describe_s3(uri, storage)
    path = local_path(uri)
    if path.is_file():
        info = storage.local.stat(str(path))
        return SourceInfo(uri=uri, kind=LOCAL_FILE, size=info.size, objects=1, version=info.etag)
    if path.is_dir():
        listing = storage.local.list(str(path))
        entries = [(item.uri, item.etag, item.size) for item in listing]
        return SourceInfo(
            uri=uri, kind=LOCAL_DIR, size=sum(item.size for item in listing), objects=len(listing),
            version=_listing_version(entries),
        )
    raise StorageError(f"cannot read {uri}: no such file or folder.")


def _describe_s3(uri: str, storage: Storage) -> SourceInfo:
    location = parse_s3_uri(uri)
    if location.key and not location.key.endswith("/"):
        try:
            info = storage.s3.stat(uri)
        except StorageError as error:
            if error.__cause__ is None or not is_not_found(error.__cause__):
                raise
            missing = error
        else:
            return SourceInfo(uri=uri, kind=OBJECT, size=info.size, objects=1, version=info.etag)
    else:
        missing = StorageError(f"cannot read {uri}: no objects exist under this prefix.")
    listing = storage.s3.list(uri)
    if not listing:
        raise missing
    prefix_length = len(f"s3://{location.bucket}/{location.dir_prefix}")
    entries = [(item.uri[prefix_length:], item.etag, item.size) for item in listing]
    return SourceInfo(
        uri=uri, kind=PREFIX, size=sum(item.size for item in listing), objects=len(listing),
        version=_listing_version(entries),
    )

"""Parsing and joining of storage locations: local paths and `s3://bucket/key` URIs.

Every other module in `hpo.storage` takes locations as plain strings so that specs, sweep configs and
CLIs can pass them through untouched; this module is the one place that decides what a string means.
A malformed `s3://` URI is a user mistake and raises `StorageError` naming the URI and the rule it broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from skillkit.errors import StorageError

S3_SCHEME = "s3://"

# S3's bucket naming rules (lower-case letters, digits, dots and hyphens, 3-63 characters, starting and
# ending with a letter or digit); S3-compatible stores follow the same rules.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """A bucket and key; `key` may be empty (the bucket root) and never starts with '/'."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"

    def child(self, relative: str) -> S3Location:
        """The location `relative` below this one, treating this key as a directory."""
        relative = relative.lstrip("/")
        base = self.key.rstrip("/")
        return S3Location(self.bucket, f"{base}/{relative}" if base else relative)

    @property
    def dir_prefix(self) -> str:
        """The key as a listing prefix: everything 'inside' this location starts with it."""
        return f"{self.key.rstrip('/')}/" if self.key.strip("/") else ""

    @property
    def name(self) -> str:
        """The last path component of the key ('' for a bucket root)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def is_s3_uri(location: object) -> bool:
    """True for strings that start with `s3://` (case-insensitive scheme), whatever follows."""
    return isinstance(location, str) and location[:5].lower() == S3_SCHEME


def parse_s3_uri(uri: str) -> S3Location:
    """Split `s3://bucket/key` into its parts, refusing anything S3 would not accept."""
    if not is_s3_uri(uri):
        raise StorageError(f"{uri!r} is not an S3 URI: S3 locations are written as s3://<bucket>/<key>.")
    rest = uri[len(S3_SCHEME):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(
            f"S3 URI {uri!r} has no bucket name: S3 locations are written as s3://<bucket>/<key>."
        )
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise StorageError(
            f"S3 URI {uri!r} names the bucket {bucket!r}, which is not a valid bucket name: bucket names "
            "are 3-63 characters of lower-case letters, digits, dots and hyphens, starting and ending "
            "with a letter or digit."
        )
    if "//" in key.rstrip("/") or key.startswith("/"):
        raise StorageError(
            f"S3 URI {uri!r} has an empty path component ('//'); write it as s3://{bucket}/"
            f"{'/'.join(part for part in key.split('/') if part)}."
        )
    return S3Location(bucket, key)


def join(location: str, relative: str) -> str:
    """`location/relative` for either kind of location (S3 keys always use '/')."""
    if is_s3_uri(location):
        return parse_s3_uri(location).child(relative).uri
    return str(Path(location) / relative)


def basename(location: str) -> str:
    """The last component of a local path or S3 URI ('' for a bucket root)."""
    if is_s3_uri(location):
        return parse_s3_uri(location).name
    return Path(location).name


def display_endpoint(endpoint_url: str | None) -> str:
    """An endpoint URL safe to print: any `user:password@` part is removed."""
    if not endpoint_url:
        return "AWS S3"
    parts = urlsplit(endpoint_url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return endpoint_url

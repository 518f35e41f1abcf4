"""`Storage`: one object that takes local paths and `s3://` URIs alike and routes each to its backend.

Callers (staging, the workspace mirror, pre-flight, the engine) hold one `Storage` and never ask which
kind of location they have. The S3 backend is built lazily, so a purely local sweep never touches boto3's
credential chain.
"""

from __future__ import annotations

import builtins
import os
import threading
from pathlib import Path
from typing import Any

from hpo.storage.base import ObjectInfo, StorageBackend
from hpo.storage.local import LocalBackend
from hpo.storage.progress import TransferProgress
from hpo.storage.retry import RetryPolicy
from hpo.storage.s3 import S3Backend, TransferSettings, resolve_endpoint
from hpo.storage.uri import is_s3_uri


class Storage:
    """Local paths and S3 URIs behind one interface (see `hpo.storage.base.StorageBackend`).

    Keyword settings apply to S3 only: `endpoint_url` (else `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`),
    `region`, `profile` (a named profile of the standard AWS files), `retry`, `transfer` (multipart
    thresholds), `progress` (None: bars on terminals only; True/False: always/never) and
    `addressing_style` ('path', 'virtual'; default path for custom endpoints).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transfer: TransferSettings = TransferSettings(),
        progress: bool | TransferProgress | None = None,
        addressing_style: str | None = None,
    ) -> None:
        self._s3_options: dict[str, Any] = dict(
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            retry=retry,
            transfer=transfer,
            progress=progress if isinstance(progress, TransferProgress) else TransferProgress(enabled=progress),
            addressing_style=addressing_style,
        )
        self.retry = retry
        self.local = LocalBackend()
        self._s3: S3Backend | None = None
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint in use (None means AWS's own)."""
        return resolve_endpoint(self._s3_options["endpoint_url"])

    @property
    def s3(self) -> S3Backend:
        with self._lock:
            if self._s3 is None:
                self._s3 = S3Backend(**self._s3_options)
            return self._s3

    def backend(self, location: str | os.PathLike) -> StorageBackend:
        """The backend for a location: S3 for `s3://` URIs, local for anything else."""
        return self.s3 if is_s3_uri(location) else self.local

    def stat(self, location: str) -> ObjectInfo:
        return self.backend(location).stat(str(location))

    def exists(self, location: str) -> bool:
        return self.backend(location).exists(str(location))

    def size(self, location: str) -> int:
        return self.stat(location).size

    def etag(self, location: str) -> str:
        return self.stat(location).etag

    def list(self, location: str) -> list[ObjectInfo]:
        return self.backend(location).list(str(location))

    def entries(self, location: str) -> builtins.list[str]:
        return self.backend(location).entries(str(location))

    def download(self, location: str, destination: str | os.PathLike) -> ObjectInfo:
        return self.backend(location).download(str(location), Path(destination))

    def upload(self, source: str | os.PathLike, location: str) -> None:
        self.backend(location).upload(Path(source), str(location))

    def delete(self, location: str, *, recursive: bool = False) -> int:
        return self.backend(location).delete(str(location), recursive=recursive)

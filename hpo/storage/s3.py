"""The S3 backend (boto3), for AWS and S3-compatible stores (MinIO, Ceph, moto).

Credentials come from boto3's standard chain (environment, profile files, web identity, container and
instance roles); we never accept them as arguments, so they cannot end up in a sweep config. The endpoint
is the explicit `endpoint_url`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS itself; a
custom endpoint switches to path-style addressing, which every S3-compatible store understands.

Large files move through boto3's managed transfers: multipart above `TransferSettings.multipart_threshold`,
parts of `multipart_chunksize`, `max_concurrency` threads.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_exc
from botocore.config import Config

from hpo.storage.base import ObjectInfo, StorageBackend
from hpo.storage.failures import is_not_found
from hpo.storage.progress import TransferProgress
from hpo.storage.retry import RetryPolicy, call_with_retries
from hpo.storage.uri import S3Location, display_endpoint, parse_s3_uri
from skillkit.errors import StorageError
from skillkit.redaction import register_secret

T = TypeVar("T")

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
ENDPOINT_ENV_VARS: tuple[str, ...] = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class TransferSettings:
    """Multipart thresholds for managed transfers (S3 requires parts of at least 5 MiB)."""

    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if self.multipart_chunksize < 5 * MiB:
            raise StorageError(
                f"multipart_chunksize must be at least 5 MiB (S3's minimum part size), but got "
                f"{self.multipart_chunksize} bytes."
            )
        if self.max_concurrency < 1:
            raise StorageError(f"max_concurrency must be >= 1, but got {self.max_concurrency}.")

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=self.max_concurrency > 1,
        )


def resolve_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint to use: the explicit one, else the standard environment variables, else None (AWS)."""
    if endpoint_url:
        return endpoint_url
    for name in ENDPOINT_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


class S3Backend(StorageBackend):
    """`s3://` locations (see `StorageBackend` for the contract). Thread-safe; build one per process."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transfer: TransferSettings = TransferSettings(),
        progress: TransferProgress | None = None,
        addressing_style: str | None = None,
    ) -> None:
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.retry = retry
        self.transfer = transfer
        self.progress = progress or TransferProgress()
        self._profile = profile
        self._region = region
        self._addressing_style = addressing_style or ("path" if self.endpoint_url else "auto")
        self._client = None
        self._session: boto3.session.Session | None = None
        self._lock = threading.RLock()  # `client` builds `session` under the same lock

    # -- clients ---------------------------------------------------------------------------------------

    @property
    def session(self) -> boto3.session.Session:
        """The boto3 session (credential chain, profile, region); built on first use."""
        with self._lock:
            if self._session is None:
                try:
                    self._session = boto3.session.Session(profile_name=self._profile, region_name=self._region)
                except boto_exc.ProfileNotFound:
                    raise StorageError(
                        f"the AWS profile {self._profile!r} is not defined in ~/.aws/config or "
                        "~/.aws/credentials (or the files AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name)."
                    ) from None
            return self._session

    @property
    def region(self) -> str:
        return self._region or self.session.region_name or DEFAULT_REGION

    @property
    def client(self):
        """The boto3 S3 client, with botocore's per-request retries configured from `self.retry`."""
        session = self.session
        with self._lock:
            if self._client is None:
                options: dict = {
                    "retries": self.retry.botocore_config(),
                    "s3": {"addressing_style": self._addressing_style},
                    "connect_timeout": 10,
                    "read_timeout": 60,
                }
                if self.endpoint_url:
                    # Many S3-compatible stores reject the CRC checksums newer boto3 sends by default.
                    options["request_checksum_calculation"] = "when_required"
                    options["response_checksum_validation"] = "when_required"
                try:
                    self._client = session.client(
                        "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=Config(**options)
                    )
                except ValueError as error:  # e.g. an endpoint URL without a scheme
                    raise StorageError(
                        f"cannot use the S3 endpoint {display_endpoint(self.endpoint_url)!r}: {error}."
                    ) from None
                self._register_credentials()
            return self._client

    def _register_credentials(self) -> None:
        """Tell the redactor about credentials resolved from files or roles (env ones it reads itself)."""
        credentials = self.session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            register_secret(frozen.access_key, frozen.secret_key, frozen.token)

    def credential_source(self) -> str | None:
        """Where boto3 found credentials ('env', 'shared-credentials-file', 'iam-role', ...), or None.

        Only the name of the source is ever returned, never a credential value.
        """
        credentials = self.session.get_credentials()
        if credentials is None:
            return None
        frozen = credentials.get_frozen_credentials()
        register_secret(frozen.access_key, frozen.secret_key, frozen.token)
        return getattr(credentials, "method", None) or "unknown"

    def _call(self, location: str, action: str, operation):
        return call_with_retries(operation, uri=location, action=action, policy=self.retry)

    # -- StorageBackend --------------------------------------------------------------------------------

    def stat(self, location: str) -> ObjectInfo:
        target = parse_s3_uri(location)
        try:
            response = self._call(
                location, "read", lambda: self.client.head_object(Bucket=target.bucket, Key=target.key)
            )
        except StorageError as error:
            cause = error.__cause__
            if cause is not None and is_not_found(cause):
                self._raise_if_bucket_missing(target, location)
            raise
        return ObjectInfo(
            uri=location,
            size=int(response["ContentLength"]),
            etag=_etag(response.get("ETag")),
            modified=response["LastModified"].timestamp(),
        )

    def _raise_if_bucket_missing(self, target: S3Location, location: str) -> None:
        """A HEAD on a missing key and on a missing bucket both answer 404; tell the user which."""
        try:
            self._call(location, "read", lambda: self.client.head_bucket(Bucket=target.bucket))
        except StorageError as error:
            cause = error.__cause__
            if cause is not None and (is_not_found(cause) or "NoSuchBucket" in str(cause)):
                raise StorageError(
                    f"cannot read {location}: the bucket {target.bucket!r} does not exist at "
                    f"{display_endpoint(self.endpoint_url)}."
                ) from None
            raise

    def bucket_reachable(self, bucket: str) -> None:
        """Raise `StorageError` unless the bucket exists and these credentials may access it."""
        location = f"s3://{bucket}/"
        try:
            self._call(location, "access", lambda: self.client.head_bucket(Bucket=bucket))
        except StorageError as error:
            cause = error.__cause__
            if cause is not None and is_not_found(cause):
                raise StorageError(
                    f"cannot access {location}: the bucket {bucket!r} does not exist at "
                    f"{display_endpoint(self.endpoint_url)}."
                ) from None
            raise

    def exists(self, location: str) -> bool:
        try:
            self.stat(location)
        except StorageError as error:
            cause = error.__cause__
            if cause is not None and is_not_found(cause):
                return False
            raise
        return True

    def list(self, location: str) -> list[ObjectInfo]:
        target = parse_s3_uri(location)

        def list_all() -> list[ObjectInfo]:
            found = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=target.bucket, Prefix=target.dir_prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):  # a "directory marker", not data
                        continue
                    found.append(
                        ObjectInfo(
                            uri=f"s3://{target.bucket}/{item['Key']}",
                            size=int(item["Size"]),
                            etag=_etag(item.get("ETag")),
                            modified=item["LastModified"].timestamp(),
                        )
                    )
            return sorted(found, key=lambda info: info.uri)

        return self._listing(location, target.bucket, list_all)

    def _listing(self, location: str, bucket: str, list_fn: Callable[[], T]) -> T:
        """Run a listing with the usual retries; a missing bucket is said plainly (S3 only hints at it)."""
        try:
            return self._call(location, "list", list_fn)
        except StorageError as error:
            cause = error.__cause__
            if cause is not None and "NoSuchBucket" in str(cause):
                raise StorageError(
                    f"cannot list {location}: the bucket {bucket!r} does not exist at "
                    f"{display_endpoint(self.endpoint_url)}."
                ) from None
            raise

    def entries(self, location: str) -> builtins.list[str]:
        """One level of the prefix (S3's delimiter listing), as `ls` shows a folder."""
        target = parse_s3_uri(location)
        prefix = target.dir_prefix

        def list_level() -> list[str]:
            names: set[str] = set()
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=target.bucket, Prefix=prefix, Delimiter="/"):
                names.update(item["Prefix"][len(prefix):] for item in page.get("CommonPrefixes", []))
                names.update(item["Key"][len(prefix):] for item in page.get("Contents", []))
            names.discard("")  # the prefix's own "directory marker"
            return sorted(names)

        return self._listing(location, target.bucket, list_level)

    def download(self, location: str, destination: Path) -> ObjectInfo:
        target = parse_s3_uri(location)
        info = self.stat(location)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self.progress.track(f"download {target.name}", info.size) as callback:
                self._call(
                    location,
                    "download",
                    lambda: self.client.download_file(
                        target.bucket,
                        target.key,
                        str(temporary),
                        Config=self.transfer.transfer_config(),
                        Callback=callback,
                    ),
                )
            received = temporary.stat().st_size
            if received != info.size:
                raise StorageError(
                    f"cannot download {location}: received {received} bytes but the object has {info.size}."
                )
            os.replace(temporary, destination)
        finally:
            temporary.unlink(missing_ok=True)
        logger.debug("downloaded %s (%d bytes) to %s", location, info.size, destination)
        return info

    def upload(self, source: Path, location: str) -> None:
        target = parse_s3_uri(location)
        source = Path(source)
        if not source.is_file():
            raise StorageError(f"cannot upload {source} to {location}: the local file does not exist.")
        size = source.stat().st_size
        with self.progress.track(f"upload {source.name}", size) as callback:
            self._call(
                location,
                "upload to",
                lambda: self.client.upload_file(
                    str(source), target.bucket, target.key, Config=self.transfer.transfer_config(), Callback=callback
                ),
            )
        logger.debug("uploaded %s (%d bytes) to %s", source, size, location)

    def delete(self, location: str, *, recursive: bool = False) -> int:
        target = parse_s3_uri(location)
        if not recursive:
            self._call(location, "delete", lambda: self.client.delete_object(Bucket=target.bucket, Key=target.key))
            return 1
        keys = [parse_s3_uri(info.uri).key for info in self.list(location)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self._call(
                location,
                "delete",
                lambda batch=batch: self.client.delete_objects(
                    Bucket=target.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
        return len(keys)

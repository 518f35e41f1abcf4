"""Pointing other libraries' S3 clients (pyarrow for Ray Tune, boto3 inside MLflow) at our endpoint.

Each library finds the endpoint its own way: pyarrow's `S3FileSystem` ignores `AWS_ENDPOINT_URL` and
needs `endpoint_override` + `scheme`; MLflow's artifact store reads `MLFLOW_S3_ENDPOINT_URL`. These helpers
derive both from the one endpoint `hpo.storage` uses, so a sweep on MinIO or moto needs no second setting.

Credentials are never passed explicitly: pyarrow and MLflow resolve them from the same standard chain
(environment, profile files, instance roles). That matters for Ray, which pickles the filesystem into
its experiment state on S3: a filesystem built with explicit keys would carry them into that file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hpo.storage.s3 import DEFAULT_REGION, resolve_endpoint
from hpo.storage.uri import display_endpoint, parse_s3_uri
from skillkit.errors import StorageError

if TYPE_CHECKING:  # pyarrow is imported lazily: only Ray-on-S3 sweeps need it
    import pyarrow.fs

MLFLOW_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"


def pyarrow_s3_filesystem(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    connect_timeout: float | None = 10.0,
    request_timeout: float | None = 60.0,
) -> pyarrow.fs.S3FileSystem:
    """A pyarrow S3 filesystem on our endpoint (explicit, else `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`).

    For Ray Tune: `RunConfig(storage_path=ray_storage_path("s3://bucket/prefix"),
    storage_filesystem=pyarrow_s3_filesystem())`.
    """
    import pyarrow.fs

    endpoint = resolve_endpoint(endpoint_url)
    options: dict = {
        "region": region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        "connect_timeout": connect_timeout,
        "request_timeout": request_timeout,
        "retry_strategy": pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=5),
    }
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StorageError(
                f"the S3 endpoint {display_endpoint(endpoint)!r} is not an http(s) URL such as "
                "http://127.0.0.1:9000."
            )
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        options.update(endpoint_override=host, scheme=parts.scheme, force_virtual_addressing=False)
    return pyarrow.fs.S3FileSystem(**options)


def ray_storage_path(uri: str) -> str:
    """`s3://bucket/prefix` as Ray wants it next to an explicit `storage_filesystem`: `bucket/prefix`."""
    location = parse_s3_uri(uri)
    return f"{location.bucket}/{location.key.strip('/')}".rstrip("/")


def mlflow_s3_environment(*, endpoint_url: str | None = None) -> dict[str, str]:
    """Environment variables MLflow needs to keep artifacts at an `s3://` location on our endpoint.

    Empty when the endpoint is AWS itself. Apply with `os.environ.update(...)` in the process that logs
    artifacts, or pass to trial subprocesses. An existing `MLFLOW_S3_ENDPOINT_URL` is kept.
    """
    if os.environ.get(MLFLOW_ENDPOINT_ENV):
        return {MLFLOW_ENDPOINT_ENV: os.environ[MLFLOW_ENDPOINT_ENV]}
    endpoint = resolve_endpoint(endpoint_url)
    return {MLFLOW_ENDPOINT_ENV: endpoint} if endpoint else {}

"""Fault tests: transient S3 failures injected by a real HTTP proxy in front of moto.

Requests go boto3 -> proxy (127.0.0.1) -> moto; the proxy answers chosen requests with 503/500 errors or
drops the connection, so the retries exercised are the real botocore and `call_with_retries` paths.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hpo.storage import RetryPolicy, Storage, stage_spec_sources
from skillkit.errors import StorageError

FAST = dict(initial_delay=0.01, max_delay=0.05)


def _put(storage: Storage, tmp_path: Path, uri: str, data: bytes = b"payload") -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    storage.upload(source, uri)


def test_transient_503_is_retried_by_our_layer(
    fault_proxy, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=4, botocore_max_attempts=1, **FAST))
    uri = f"s3://{bucket}/data/a.bin"
    _put(storage, tmp_path, uri)
    fault_proxy.fail(3, status=503, code="SlowDown", method="HEAD")
    with caplog.at_level(logging.WARNING, logger="hpo.storage"):
        assert storage.size(uri) == 7
    assert fault_proxy.failures == 3
    messages = [record.getMessage() for record in caplog.records]
    assert any("attempt 1/4 failed (the server failed temporarily (HTTP 503" in m for m in messages)


def test_transient_500_is_retried_by_botocore(fault_proxy, bucket: str, tmp_path: Path) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=1, botocore_max_attempts=3, **FAST))
    uri = f"s3://{bucket}/data/b.bin"
    _put(storage, tmp_path, uri)
    fault_proxy.fail(2, status=500, code="InternalError", method="GET")
    storage.download(uri, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"payload"
    assert fault_proxy.failures == 2


def test_dropped_connections_and_failed_uploads_are_retried(fault_proxy, bucket: str, tmp_path: Path) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=3, botocore_max_attempts=1, **FAST))
    uri = f"s3://{bucket}/data/c.bin"
    fault_proxy.fail(1, status=0, method="PUT")  # connection dropped mid-request
    fault_proxy.fail(1, status=503, code="SlowDown", method="PUT")
    _put(storage, tmp_path, uri, b"uploaded through faults")
    assert fault_proxy.failures == 2
    storage.download(uri, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"uploaded through faults"


def test_gives_up_after_the_limit_with_a_clear_error(fault_proxy, bucket: str, tmp_path: Path) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=3, botocore_max_attempts=2, **FAST))
    uri = f"s3://{bucket}/data/d.bin"
    _put(storage, tmp_path, uri)
    fault_proxy.fail(None, status=503, code="SlowDown", method="GET")
    with pytest.raises(
        StorageError,
        match=rf"cannot download {uri} after 3 attempts: the server failed temporarily \(HTTP 503, SlowDown",
    ):
        storage.download(uri, tmp_path / "never.bin")
    assert fault_proxy.failures == 3 * 2  # 3 whole attempts of 2 HTTP attempts each
    assert not (tmp_path / "never.bin").exists()
    assert not list(tmp_path.glob(".never.bin.*"))


def test_missing_object_is_not_retried(fault_proxy, bucket: str) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=4, botocore_max_attempts=3, **FAST))
    with pytest.raises(StorageError, match="the object does not exist"):
        storage.stat(f"s3://{bucket}/data/absent.bin")
    assert fault_proxy.requests == 2  # one HEAD on the key, one HEAD on the bucket to word the error


def test_staging_survives_transient_errors(fault_proxy, bucket: str, tmp_path: Path, tar_factory) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(max_attempts=4, botocore_max_attempts=1, **FAST))
    archive = tar_factory({"a.png": b"A", "b.png": b"B"}, top="images")
    uri = f"s3://{bucket}/data/train/images.tar.gz"
    storage.upload(archive, uri)
    fault_proxy.fail(2, status=503, code="SlowDown", method="GET", path_contains="images.tar.gz")
    fault_proxy.fail(1, status=500, code="InternalError", method="HEAD")
    report = stage_spec_sources({"dataset": {"train": {"img_dir": uri}}}, data_paths=["dataset.train.img_dir"],
                                cache_dir=tmp_path / "cache", storage=storage)
    assert fault_proxy.failures == 3
    assert sorted(p.name for p in Path(report.spec["dataset"]["train"]["img_dir"]).iterdir()) == ["a.png", "b.png"]

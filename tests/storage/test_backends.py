"""One contract suite for both backends (local folder, S3 on a real moto server), plus S3-only behaviour."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from hpo.storage import RetryPolicy, Storage, TransferProgress, TransferSettings, parse_s3_uri
from skillkit.errors import StorageError

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A writable root location of each kind."""
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/root"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_upload_stat_download_list_delete(root: str, tmp_path: Path) -> None:
    storage = Storage()
    source = _write(tmp_path / "src" / "a.bin", b"hello storage")
    target = f"{root}/dir/a.bin"

    assert not storage.exists(target)
    storage.upload(source, target)
    assert storage.exists(target)
    assert storage.size(target) == 13
    first_tag = storage.etag(target)
    assert first_tag

    downloaded = tmp_path / "out" / "copy.bin"
    info = storage.download(target, downloaded)
    assert downloaded.read_bytes() == b"hello storage"
    assert info.size == 13
    assert not list(downloaded.parent.glob("*.part"))  # no temporary left behind

    storage.upload(_write(tmp_path / "src" / "b.txt", b"bb"), f"{root}/dir/sub/b.txt")
    listing = storage.list(f"{root}/dir")
    assert [item.uri.rsplit("/", 2)[-2:] for item in listing] == [["dir", "a.bin"], ["sub", "b.txt"]]
    assert [item.size for item in listing] == [13, 2]

    # Rewriting changes the version tag (what the staging cache keys on).
    os.utime(source, ns=(1, 1))
    source.write_bytes(b"hello storage, again")
    storage.upload(source, target)
    assert storage.etag(target) != first_tag

    assert storage.delete(f"{root}/dir", recursive=True) == 2
    assert storage.list(f"{root}/dir") == []
    assert not storage.exists(target)


def test_missing_object_names_uri_and_cause(root: str, tmp_path: Path) -> None:
    storage = Storage()
    missing = f"{root}/nope/images.tar.gz"
    with pytest.raises(StorageError, match=r"cannot read .*nope/images\.tar\.gz.*does not exist"):
        storage.stat(missing)
    with pytest.raises(StorageError, match="does not exist"):
        storage.download(missing, tmp_path / "x")
    with pytest.raises(StorageError, match="local file does not exist"):
        storage.upload(tmp_path / "absent.bin", f"{root}/x")


def test_missing_bucket_is_named(s3_client) -> None:
    storage = Storage()
    with pytest.raises(StorageError, match=r"bucket 'no-such-bucket-hpo' does not exist at http://127\.0\.0\.1"):
        storage.stat("s3://no-such-bucket-hpo/data/images.tar.gz")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-hpo' does not exist"):
        storage.exists("s3://no-such-bucket-hpo/data/images.tar.gz")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-hpo' does not exist"):
        storage.list("s3://no-such-bucket-hpo/data/")


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("s3://", "has no bucket name"),
        ("s3:///key", "has no bucket name"),
        ("s3://Bad_Bucket/key", "not a valid bucket name"),
        ("s3://ab/key", "not a valid bucket name"),
        ("s3://bucket//double", r"empty path component"),
    ],
)
def test_bad_uri_syntax(uri: str, match: str) -> None:
    with pytest.raises(StorageError, match=match):
        parse_s3_uri(uri)
    with pytest.raises(StorageError, match=match):
        Storage().exists(uri)


def test_no_credentials_is_clear(monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match=rf"cannot read s3://{bucket}/k: no AWS credentials were found"):
        Storage().stat(f"s3://{bucket}/k")


def test_unknown_profile_is_clear(monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    with pytest.raises(StorageError, match="profile 'missing-profile' is not defined"):
        Storage(profile="missing-profile").stat(f"s3://{bucket}/k")


def test_access_denied_is_clear(fault_proxy, bucket: str, tmp_path: Path) -> None:
    storage = Storage(endpoint_url=fault_proxy.url, retry=RetryPolicy(initial_delay=0.01))
    storage.upload(_write(tmp_path / "f", b"x"), f"s3://{bucket}/secret/f")
    fault_proxy.fail(None, status=403, code="AccessDenied", path_contains="/secret/")
    with pytest.raises(StorageError, match=rf"cannot read s3://{bucket}/secret/f: access denied"):
        storage.stat(f"s3://{bucket}/secret/f")
    assert fault_proxy.failures == 1  # denied is permanent: not retried


def test_endpoint_userinfo_never_printed(bucket: str) -> None:
    storage = Storage(endpoint_url="http://user:pa55word-Secret@127.0.0.1:9/", retry=RetryPolicy(
        max_attempts=1, botocore_max_attempts=1))
    with pytest.raises(StorageError) as caught:
        storage.stat(f"s3://{bucket}/k")
    assert "pa55word-Secret" not in str(caught.value)


def test_multipart_upload_and_download(bucket: str, tmp_path: Path) -> None:
    """Above the threshold, uploads go in parts (ETag 'md5-N') and downloads still match byte for byte."""
    settings = TransferSettings(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
    storage = Storage(transfer=settings)
    data = os.urandom(11 * MiB)
    source = _write(tmp_path / "big.bin", data)
    uri = f"s3://{bucket}/big/big.bin"
    storage.upload(source, uri)
    assert storage.etag(uri).endswith("-3")  # 5 + 5 + 1 MiB
    out = tmp_path / "big.out"
    storage.download(uri, out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_progress_bar_only_above_threshold(bucket: str, tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    storage = Storage(progress=TransferProgress(enabled=True, min_bytes=64 * 1024, console=console))
    storage.upload(_write(tmp_path / "small.bin", b"x" * 1000), f"s3://{bucket}/small.bin")
    assert "small.bin" not in buffer.getvalue()
    storage.upload(_write(tmp_path / "large.bin", os.urandom(256 * 1024)), f"s3://{bucket}/large.bin")
    assert "upload large.bin" in buffer.getvalue()
    # Not a terminal and not forced: quiet.
    quiet = io.StringIO()
    auto = TransferProgress(console=Console(file=quiet), min_bytes=1)
    assert not auto.shows(10**9)


def test_transfer_settings_are_validated() -> None:
    with pytest.raises(StorageError, match="at least 5 MiB"):
        TransferSettings(multipart_chunksize=1024)
    with pytest.raises(StorageError, match="max_concurrency must be >= 1"):
        TransferSettings(max_concurrency=0)
    with pytest.raises(StorageError, match="attempts must be >= 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(StorageError, match="initial_delay <= max_delay"):
        RetryPolicy(initial_delay=5, max_delay=1)

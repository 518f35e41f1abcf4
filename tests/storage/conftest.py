"""Fixtures for storage tests: a real `moto_server` process, fake credentials, buckets, a fault proxy.

The S3 server is a separate process speaking real HTTP on 127.0.0.1, so boto3, s3transfer, pyarrow and
MLflow all go through their real network code paths. Credentials are fake but distinctive, so tests can
scan logs, messages and files for them.
"""

from __future__ import annotations

import http.client
import io
import socket
import sys
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.storage.moto_support import MOTO_SERVER, moto_server

FAKE_ACCESS_KEY = "AKIAHPOTESTFAKEKEY01"
FAKE_SECRET_KEY = "hpoFakeSecret/DoNotPrint+Zq8Xv2Lm9Rt4Wy7Bn3Kc"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server started for this test session (stopped at its end)."""
    if not MOTO_SERVER.exists():
        pytest.fail(f"moto_server is needed next to {sys.executable} (the test extra, moto[server]; scripts/setup.sh)")
    with moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log") as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and no profile files for every storage test (`moto_env` adds the endpoint)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HPO_DATA_CACHE": str(tmp_path / "default-cache"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def moto_env(moto_endpoint: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard endpoint variable pointed at moto (what a user of an S3-compatible store sets)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3_env["AWS_ENDPOINT_URL"] = moto_endpoint
    return moto_endpoint


@pytest.fixture
def s3_client(moto_env: str):
    return boto3.client("s3", endpoint_url=moto_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket per test (moto state is shared by the whole session)."""
    name = f"hpo-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


# -- archives ------------------------------------------------------------------------------------------


def make_tar_gz(path: Path, members: dict[str, bytes], *, top: str | None = None) -> Path:
    """A `.tar.gz` at `path` holding `members` (name -> bytes), optionally all under folder `top/`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        if top:
            info = tarfile.TarInfo(top)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tar_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10**6))

    def build(members: dict[str, bytes], *, top: str | None = None, name: str = "images.tar.gz") -> Path:
        return make_tar_gz(tmp_path / f"archives{next(counter)}" / name, members, top=top)

    return build


@pytest.fixture
def dataset(bucket: str, s3_client, tar_factory) -> dict[str, str]:
    """Dataset roots {train, val}: a tiny coco_panoptic seed layout under s3://<bucket>/data/{train,val}/
    (each archive holds one folder)."""
    roots = {}
    for split, count in (("train", 3), ("val", 2)):
        images = tar_factory({f"{i:03d}.png": f"{split}-img-{i}".encode() for i in range(count)}, top="images")
        panoptic = tar_factory(
            {f"{i:03d}.png": f"{split}-pan-{i}".encode() for i in range(count)}, top="panoptic",
            name="images_panoptic.tar.gz",
        )
        prefix = f"data/{split}"
        s3_client.upload_file(str(images), bucket, f"{prefix}/images.tar.gz")
        s3_client.upload_file(str(panoptic), bucket, f"{prefix}/images_panoptic.tar.gz")
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/annotations_panoptic.json", Body=b'{"images": []}')
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/annotations.json", Body=b'{"images": []}')
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/label_map_panoptic.json", Body=b"[]")
        roots[split] = f"s3://{bucket}/{prefix}"
    return roots



# -- fault injection -------------------------------------------------------------------------------------


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of moto that can answer chosen requests with errors.

    Requests pass through unchanged (the client signs for the proxy's host; moto does not check
    signatures). `fail(count, status, code, method=..., path_contains=...)` makes the next `count`
    matching requests fail with an S3-style XML error instead of reaching moto (`status=0`: the
    connection is dropped without an answer); `count=None` fails them all. `requests` and `failures` count what went through.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.requests = 0
        self.failures = 0
        self._rules: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy._take_rule(self.command, self.path)
                if rule is not None and rule["status"] == 0:  # drop the connection without answering
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None:
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule["code"]}</Code>'
                        f"<Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
                    ).encode()
                    self.send_response(rule["status"])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    self.close_connection = True
                    return
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        continue
                    self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", response.getheader("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(
        self, count: int | None, *, status: int = 503, code: str = "SlowDown",
        method: str | None = None, path_contains: str | None = None,
    ) -> None:
        with self._lock:
            self._rules.append(
                {"count": count, "status": status, "code": code, "method": method, "path": path_contains}
            )

    def _take_rule(self, method: str, path: str) -> dict | None:
        with self._lock:
            self.requests += 1
            for rule in self._rules:
                if rule["method"] and rule["method"] != method:
                    continue
                if rule["path"] and rule["path"] not in path:
                    continue
                if rule["count"] is not None:
                    if rule["count"] <= 0:
                        continue
                    rule["count"] -= 1
                self.failures += 1
                return rule
            return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fault_proxy(moto_env: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_env)
    yield proxy
    proxy.close()


def scan_for_credentials(*texts: str) -> list[str]:
    """Which fake credential values appear in any of `texts` (empty list: none)."""
    joined = "\n".join(texts)
    return [value for value in (FAKE_ACCESS_KEY, FAKE_SECRET_KEY) if value in joined]


@pytest.fixture
def credential_scan() -> Callable[..., list[str]]:
    return scan_for_credentials


@pytest.fixture
def fake_secret() -> str:
    return FAKE_SECRET_KEY


@pytest.fixture
def fake_access_key() -> str:
    return FAKE_ACCESS_KEY


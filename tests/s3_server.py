"""A real S3-compatible server for tests: moto's server mode on 127.0.0.1.

Started once per test session on a free port; each test gets its own prefix in one
bucket. Without moto the tests that need it skip with a reason (AUDIENCESYNC_TEST_REQUIRE_S3=1,
set by .ci/run, turns that into a failure).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

REQUIRE_S3 = os.environ.get("AUDIENCESYNC_TEST_REQUIRE_S3") == "1"
BUCKET = "audiencesync-test"
#: moto accepts any credentials; these only have to be present.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def url(self, prefix: str | None = None) -> str:
        """``s3://bucket/<prefix>``: a fresh prefix unless one is given."""
        return f"s3://{self.bucket}/{prefix or uuid.uuid4().hex[:16]}"

    def env(self) -> dict[str, str]:
        """What a process needs to reach the bucket (credentials and the endpoint)."""
        return {**CREDENTIALS, "AUDIENCESYNC_STORAGE_ENDPOINT_URL": self.endpoint}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_s3() -> Iterator[S3Server]:
    """moto's S3 server on a free local port with an empty bucket; skips without moto."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        reason = (
            "S3 storage tests need moto's server (pip install -e '.[dev]' installs moto[server])"
        )
        if REQUIRE_S3:
            pytest.fail(reason)
        pytest.skip(reason)
    import pyarrow.fs as pafs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        filesystem = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True
        )
        filesystem.create_dir(BUCKET)
        yield S3Server(endpoint, BUCKET)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()

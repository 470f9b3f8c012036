"""A moto S3 server on 127.0.0.1 for tests: started and stopped by the test that uses it.

``moto_s3(*buckets)`` yields an :class:`S3` (endpoint, boto3 client, the ``AWS_*`` variables
that point s3fs/botocore at it); ``S3.use(monkeypatch)`` sets those variables in this process
(and drops cached s3fs filesystems, which would keep an older endpoint). Needs the cluster
extra (``boto3``, ``moto``, ``s3fs``): callers ``pytest.importorskip`` them first.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class S3:
    endpoint: str
    client: Any
    env: dict[str, str]

    def use(self, monkeypatch: Any) -> None:
        """Point this process's s3fs at the server (the variables are undone after the test)."""
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        import fsspec

        fsspec.filesystem("s3").clear_instance_cache()

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """``{key: size}`` of every object under ``prefix``."""
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return out

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()


@contextlib.contextmanager
def moto_s3(*buckets: str) -> Iterator[S3]:
    """A moto S3 server on 127.0.0.1 (a free port) with ``buckets`` created; stopped on exit."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint,
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield S3(endpoint, client, env)
    finally:
        server.stop()

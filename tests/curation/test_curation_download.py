"""Resumable download against a local threaded HTTP server with Range support."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import pytest

from galaxy_distillation.curation.download import download
from galaxy_distillation.curation.errors import DownloadError

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path; honours `Range: bytes=N-` unless `ignore_range`."""

    ignore_range = False
    seen_ranges: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        rng = self.headers.get("Range")
        type(self).seen_ranges.append(rng)
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not self.ignore_range:
            start = int(m.group(1))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.end_headers()
                return
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    """Start a threaded server on 127.0.0.1:<free port>; stopped after the test."""
    handler = type("H", (RangeHandler,), {"seen_ranges": [], "ignore_range": False})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_fresh_download(server, tmp_path: Path):
    url, handler = server
    dest = download(url, tmp_path / "sub" / "f.bin", expected_size=len(PAYLOAD), chunk=999,
                    progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert handler.seen_ranges == [None]
    download(url, dest, expected_size=len(PAYLOAD), progress=False, timeout=5)  # cached
    assert handler.seen_ranges == [None]


def test_resume_from_partial(server, tmp_path: Path):
    url, handler = server
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:3000])
    download(url, dest, expected_size=len(PAYLOAD), progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert handler.seen_ranges == ["bytes=3000-"]


def test_server_ignoring_range_restarts(server, tmp_path: Path):
    url, handler = server
    handler.ignore_range = True
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    download(url, dest, progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD


def test_complete_partial_gets_416(server, tmp_path: Path):
    url, _ = server
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download(url, tmp_path / "f.bin", expected_size=len(PAYLOAD), progress=False, timeout=5)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_size_mismatch_and_bad_url(server, tmp_path: Path):
    url, _ = server
    with pytest.raises(DownloadError, match="expected 12345"):
        download(url, tmp_path / "f.bin", expected_size=12345, progress=False, timeout=5)
    assert not (tmp_path / "f.bin").exists()
    dead = url.rsplit(":", 1)[0] + ":1/x"
    with pytest.raises(DownloadError, match="failed"):
        download(dead, tmp_path / "g.bin", progress=False, timeout=2)

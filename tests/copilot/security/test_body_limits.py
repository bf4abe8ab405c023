"""Issue #21, row 1 (high): request bodies are bounded per route class and checked before they are read;
authentication comes first. The "1 GB" bodies here are generated on the fly (zeros, chunk by chunk):
the tests count how many bytes the app pulled, how long it took and how much memory it used."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import tracemalloc
from pathlib import Path

import pytest

from copilot.api.app import create_app
from tests.copilot.conftest import token_for
from tests.support.servers import serve_in_thread

GIB = 1024**3
CHUNK = 1024 * 1024
BOUNDARY = b"xYzBoundary"
PREAMBLE = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\nc_a1\r\n'
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="f.m4a"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


class SparseBody:
    """``receive`` for an ASGI app: ``total`` bytes (a preamble, then zeros) in 1 MiB chunks, never
    held in memory; counts what the app pulled."""

    def __init__(self, total: int, preamble: bytes = b"") -> None:
        self.total, self.preamble, self.pulled, self.calls = total, preamble, 0, 0
        self._zeros = bytes(CHUNK)

    async def __call__(self) -> dict:
        self.calls += 1
        if self.pulled >= self.total:
            return {"type": "http.disconnect"}
        if self.pulled == 0 and self.preamble:
            chunk = self.preamble
        else:
            chunk = self._zeros[: min(CHUNK, self.total - self.pulled)]
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < self.total}


def call(app, method: str, path: str, headers: dict[str, str], receive) -> tuple[int, dict, bytes, float]:
    """One request straight into the ASGI app: (status, headers, body, seconds)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    start = time.perf_counter()
    asyncio.run(app(scope, receive, send))
    elapsed = time.perf_counter() - start
    head = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return head["status"], {k.decode(): v.decode() for k, v in head["headers"]}, body, elapsed


def _multipart(extra: dict[str, str] | None = None, *, declared: int | None = None) -> dict[str, str]:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY.decode()}", **(extra or {})}
    if declared is None:
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(declared)
    return headers


def _deleted_files_open() -> int:
    """Spooled uploads are unlinked temporary files: count those this process still holds open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")
    return count


def _nothing_stored(services) -> None:
    uploads = services.settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    from sqlalchemy import func, select

    from copilot.storage.tables import memos

    with services.engine.connect() as conn:  # the test CRM imports one memo (no upload) of its own
        assert (
            conn.execute(
                select(func.count()).select_from(memos).where(memos.c.audio_path.is_not(None))
            ).scalar()
            == 0
        )


@pytest.mark.parametrize("declared", [None, GIB], ids=["chunked", "content-length"])
def test_a_1_gib_upload_without_a_token_is_401_before_a_byte_is_read(crm_services, declared):
    app = create_app(crm_services)
    body = SparseBody(GIB, PREAMBLE)

    status, _, raw, seconds = call(app, "POST", "/api/memos", _multipart(declared=declared), body)

    assert status == 401 and b'"unauthenticated"' in raw
    assert body.pulled == 0 and seconds < 2.0
    _nothing_stored(crm_services)


def test_a_200_mb_json_body_without_a_token_is_401_without_reading_it(crm_services):
    app = create_app(crm_services)
    body = SparseBody(200 * CHUNK)
    tracemalloc.start()
    try:
        status, _, raw, _ = call(app, "POST", "/api/chat", {"content-type": "application/json",
                                                              "content-length": str(200 * CHUNK)}, body)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 401 and body.pulled == 0
    assert peak < 20 * CHUNK  # nothing like the 200 MB (the issue saw RSS +440 MB)


def test_with_a_token_a_declared_1_gib_upload_is_413_at_once(crm_services):
    app = create_app(crm_services)
    body = SparseBody(GIB, PREAMBLE)
    headers = _multipart(token_for(crm_services, "rep_a"), declared=GIB)

    status, response_headers, raw, seconds = call(app, "POST", "/api/memos", headers, body)

    assert status == 413 and b'"payload_too_large"' in raw and "文件过大" in raw.decode()
    assert body.pulled == 0 and seconds < 2.0
    assert response_headers.get("connection") == "close"  # the server stops receiving the rest
    _nothing_stored(crm_services)


def test_with_a_token_a_chunked_1_gib_upload_is_cut_at_the_limit_in_bounded_memory(crm_services):
    app = create_app(crm_services)
    limit = crm_services.settings.max_upload_bytes
    body = SparseBody(GIB, PREAMBLE)
    open_before = _deleted_files_open()
    tracemalloc.start()
    try:
        status, _, raw, seconds = call(
            app, "POST", "/api/memos", _multipart(token_for(crm_services, "rep_a")), body
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert status == 413 and b'"payload_too_large"' in raw
    assert body.pulled <= limit + 64 * 1024 + CHUNK  # read up to the limit, never the whole GiB
    assert seconds < 10.0
    assert peak < 8 * CHUNK  # the multipart parser spools to a temporary file past 1 MiB
    assert _deleted_files_open() <= open_before  # the spooled upload was closed (and so removed)
    _nothing_stored(crm_services)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_json_bodies_are_limited_to_1_mib(crm_services, declared):
    app = create_app(crm_services)
    size = 2 * CHUNK
    headers = {"content-type": "application/json", **token_for(crm_services, "rep_a")}
    headers |= {"content-length": str(size)} if declared else {"transfer-encoding": "chunked"}
    body = SparseBody(size)

    status, _, raw, _ = call(app, "POST", "/api/chat", headers, body)

    assert status == 413 and b'"payload_too_large"' in raw
    assert body.pulled <= crm_services.settings.max_json_bytes + CHUNK


def test_a_body_within_the_limit_reaches_the_route(crm_services, client_for):
    client = client_for(crm_services)
    r = client.post("/api/suggestions/sg_x/feedback", json={"action": "dismiss", "comment": "x" * 900_000},
                    headers=token_for(crm_services, "rep_a"))  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == "validation_error"  # the route's own check, not 413


def _raw_request(base: str, head: bytes, *, send_up_to: int) -> tuple[bytes, int, float]:
    """Send ``head`` then zeros until the server answers (or ``send_up_to`` bytes): (first response
    bytes, body bytes sent, seconds to the answer)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setblocking(False)
    start, sent, answer = time.perf_counter(), 0, b""
    zeros = bytes(64 * 1024)
    try:
        _send_all(sock, head)
        while sent < send_up_to and time.perf_counter() - start < 10:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sent += sock.send(zeros)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:  # the server closed the connection after answering
                break
        deadline = time.perf_counter() + 5
        while b"\r\n\r\n" not in answer and time.perf_counter() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            except BlockingIOError:
                time.sleep(0.005)
        return answer, sent, time.perf_counter() - start
    finally:
        sock.close()


def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            time.sleep(0.001)


@pytest.mark.parametrize("with_token", [False, True], ids=["no token: 401", "token: 413"])
def test_a_real_server_answers_a_1_gib_upload_before_receiving_it(crm_services, with_token):
    auth = f"Authorization: Bearer {crm_services.users.issue_token('rep_a')}\r\n" if with_token else ""
    head = (
        "POST /api/memos HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\nContent-Length: {GIB}\r\n{auth}\r\n"
    ).encode() + PREAMBLE
    with serve_in_thread(create_app(crm_services)) as base:
        answer, sent, seconds = _raw_request(base, head, send_up_to=GIB)

    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else None
    assert status == (413 if with_token else 401), answer[:300]
    assert seconds < 3.0 and sent < 64 * CHUNK  # answered long before the gigabyte was sent
    assert b"connection: close" in answer.lower()
    _nothing_stored(crm_services)


def test_the_proxy_limits_are_documented():
    nginx = (Path(__file__).resolve().parents[3] / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "client_max_body_size 1m;" in nginx and "client_max_body_size 26m;" in nginx


@pytest.mark.parametrize("customer", ["c_nope", "c_b1"], ids=["missing customer", "another team's"])
def test_a_refused_upload_leaves_no_spooled_file_behind(crm_services, client_for, customer):
    client = client_for(crm_services)
    open_before = _deleted_files_open()
    big = bytes(3 * CHUNK)  # past the parser's 1 MiB in memory: spooled to a temporary file

    r = client.post("/api/memos", files={"file": ("a.m4a", big)}, data={"customer_id": customer},
                    headers=token_for(crm_services, "rep_a"))  # fmt: skip

    assert r.status_code == 404
    assert _deleted_files_open() <= open_before
    _nothing_stored(crm_services)

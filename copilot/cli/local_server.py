"""The CLI talks to a running `copilot serve` of the same home instead of loading the models itself.

    <home>/run/server.json   {"url", "pid", "token", "fingerprint"}   mode 0600, written by `copilot serve`
                                                                       and removed when it stops

`copilot kb search` and `copilot suggest` ask ``ask(path, params)`` first: it answers with the server's
JSON document when the file is there, its process is alive, it was started with the same settings
(``fingerprint``: a hash of the data-relevant environment) and ``GET /healthz`` answers 200 on loopback;
otherwise it returns None and the command runs in-process (loading what it needs), with the same output.
Only the standard library is imported here: this path must not pay for FastAPI, SQLAlchemy or torch.

The token only opens ``/api/local/*`` (copilot.api.routes.local_cli), where the server keeps its SHA-256;
it is never logged and never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

RUN_FILE = Path("run") / "server.json"
TOKEN_PREFIX = "cpl_"  # noqa: S105 - a public prefix (copilot.api.routes.local_cli.LOCAL_TOKEN_PREFIX)
HEALTH_TIMEOUT_S = 2.0
ANSWER_TIMEOUT_S = 600.0  # the server may still be loading its models: waiting beats loading them twice
# Settings that do not change what kb search / suggest answer: the server's own HTTP and abuse limits.
_IGNORED = ("COPILOT_HOME", "COPILOT_HTTPS", "COPILOT_RATE_LIMIT", "COPILOT_SESSION_", "COPILOT_LOGIN_CODE_",
            "COPILOT_METRICS_TOKEN", "COPILOT_API_DOCS", "COPILOT_MAX_", "COPILOT_UPLOAD_QUOTA",
            "COPILOT_LOCAL_CLI_", "COPILOT_TEST_")  # fmt: skip


class ServerError(Exception):
    """The server refused the request (a 4xx with the usual error body): the CLI shows ``detail``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def home() -> Path:
    """COPILOT_HOME as Settings reads it (DESIGN §5.1), without importing the settings."""
    return Path(os.environ.get("COPILOT_HOME") or "./.copilot")


def fingerprint(environ: dict[str, str] | None = None) -> str:
    """A hash of the environment that decides the answers (database, vector store, models, CRM, LLM)."""
    env = os.environ if environ is None else environ
    items = sorted(
        (k, v)
        for k, v in env.items()
        if (k.startswith("COPILOT_") or k.startswith("OPENAI_")) and not k.startswith(_IGNORED)
    )
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def client_url(host: str, port: int) -> str | None:
    """Where the CLI reaches a server listening on ``host``: loopback only (None: do not advertise)."""
    if host in ("0.0.0.0", "127.0.0.1", "localhost", ""):  # noqa: S104 - all interfaces include loopback
        return f"http://127.0.0.1:{port}"
    if host in ("::", "::1"):
        return f"http://[::1]:{port}"
    return None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@contextlib.contextmanager
def advertised(url: str | None, token: str, where: Path | None = None) -> Iterator[Path | None]:
    """Write the run file for the lifetime of the server (mode 0600), then remove it if still ours."""
    if url is None:
        yield None
        return
    path = (where or home()) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    data = {"url": url, "pid": os.getpid(), "token": token, "fingerprint": fingerprint()}
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale file keeps its own mode: the token is only ever written to a new one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    # uvicorn re-raises the SIGTERM it handled once it has shut down: let that unwind to the clean-up
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield path
    finally:
        if signal.getsignal(signal.SIGTERM) is _exit_on_sigterm:
            signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not our server
        return False
    return True


def _read_run_file() -> dict[str, Any] | None:
    path = home() / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("url", "token")):
        return None
    if not isinstance(data.get("pid"), int) or not _alive(data["pid"]):
        return None
    if data.get("fingerprint") != fingerprint():
        return None
    return data


def _get(url: str, path: str, *, token: str | None, timeout: float) -> tuple[int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1"):
        raise OSError("not a loopback server")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def server() -> dict[str, Any] | None:
    """The running server of this home (``url``, ``token``), or None."""
    if os.environ.get("COPILOT_CLI_SERVER", "").lower() in ("0", "off", "false", "no"):
        return None
    data = _read_run_file()
    if data is None:
        return None
    try:
        status, _ = _get(data["url"], "/healthz", token=None, timeout=HEALTH_TIMEOUT_S)
    except (OSError, http.client.HTTPException):
        return None
    return data if status == 200 else None


def ask(path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The server's answer to ``GET /api/local/<path>``; None when there is no usable server (run
    in-process then). A refusal (4xx other than 401) raises ServerError with the Chinese detail."""
    found = server()
    if found is None:
        return None
    query = urlencode({k: v for k, v in params.items() if v is not None})
    try:
        status, body = _get(found["url"], f"/api/local/{path}?{query}", token=found["token"],
                            timeout=ANSWER_TIMEOUT_S)  # fmt: skip
        data = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    if status == 200 and isinstance(data, dict):
        return data
    if 400 <= status < 500 and status != 401 and isinstance(data, dict) and "detail" in data:
        raise ServerError(str(data.get("error", "")), str(data["detail"]))
    return None  # 401 (a stale file), 5xx: answer in-process

"""Serve any ASGI app with a real uvicorn server on 127.0.0.1, in a background thread.

    with serve_in_thread(app) as base_url:
        httpx.get(f"{base_url}/healthz")

The socket is bound before the thread starts (port 0, so no race for a free port); uvicorn
installs no signal handlers outside the main thread; leaving the block asks the server to exit,
cancels requests still running after ``graceful`` seconds and joins the thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["serve_in_thread"]


@contextmanager
def serve_in_thread(
    app: Any, *, start_timeout: float = 10.0, graceful: float = 1.0, **config: Any
) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 on a free port; yield its base URL (``http://127.0.0.1:PORT``).

    Extra keyword arguments go to ``uvicorn.Config`` (e.g. ``lifespan="off"``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": graceful,
    }
    server = uvicorn.Server(uvicorn.Config(app, **(options | config)))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server on 127.0.0.1:{port} did not start (see the log above)")
            time.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout + graceful)
        sock.close()

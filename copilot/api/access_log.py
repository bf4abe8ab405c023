"""Access logs without credentials: uvicorn's request lines with the query string cut off.

A query string may carry a one-time login code (``/login?code=…``), a search text or other personal
data; none of it belongs in a log. ``copilot serve`` passes ``log_config()`` to uvicorn, so every
worker process logs ``"GET /login HTTP/1.1" 303``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any


class StripQueryString(logging.Filter):
    """On uvicorn.access records (args: client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration plus the filter on the access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["strip_query"] = {"()": f"{__name__}.StripQueryString"}
    config["loggers"]["uvicorn.access"].setdefault("filters", []).append("strip_query")
    return config

"""``/api/local/*``: the reports of `copilot kb search` and `copilot suggest`, for the CLI of the same home.

`copilot serve` mints a random token at start-up, keeps only its SHA-256 (``app.state``), and hands the
token to the CLI in ``<home>/run/server.json`` (mode 0600, removed on shutdown). These routes accept that
token and nothing else (user tokens and web sessions are refused), and only from a loopback address
and never through a proxy (forwarding headers are refused); the token cannot call any other route. The CLI then answers from the server's warm models in about a
second instead of loading them (copilot.cli.local_server).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from copilot.api.deps import KnowledgeBaseDep, SuggesterDep, UsersDep
from copilot.errors import AppError
from copilot.features.cli_reports import kb_search_report, suggest_report

LOCAL_TOKEN_PREFIX = "cpl_"  # noqa: S105 - a public prefix, not a secret
LOOPBACK = ("127.0.0.1", "::1")
MAX_K = 200  # as `copilot kb search -k` allows
# The CLI connects straight to the server: a request relayed by a proxy is not it, whatever address the
# proxy headers make it appear from (uvicorn rewrites the client from X-Forwarded-For for trusted
# proxies, and FORWARDED_ALLOW_IPS=* trusts every peer).
PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-host", "x-real-ip", "forwarded")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def local_cli(request: Request) -> None:
    """The request carries this server's local CLI token, from this machine; else 401 (404 when off)."""
    expected: str | None = getattr(request.app.state, "local_cli_token_sha256", None)
    if not expected:
        raise AppError("not_found")
    client = request.client.host if request.client else ""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if (
        client not in LOOPBACK
        or any(h in request.headers for h in PROXY_HEADERS)
        or scheme.lower() != "bearer"
        or not token.startswith(LOCAL_TOKEN_PREFIX)
        or not hmac.compare_digest(token_sha256(token), expected)
    ):
        raise AppError("unauthenticated")


router = APIRouter(prefix="/api/local", tags=["local CLI"], dependencies=[Depends(local_cli)],
                   include_in_schema=False)  # fmt: skip


@router.get("/kb/search")
def kb_search(
    kb: KnowledgeBaseDep,
    users: UsersDep,
    q: Annotated[str, Query(max_length=2000)],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    user: str | None = None,
) -> dict:
    return kb_search_report(kb, users, q, k=k, user_id=user)


@router.get("/suggest")
def suggest(sg: SuggesterDep, customer: str, as_of: str | None = None) -> dict:
    return suggest_report(sg, customer, as_of)

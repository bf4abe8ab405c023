"""Who is calling: a bearer token, or the session cookie of the web login (never the request body).

``resolve`` is the one place credentials are read. The request guard (``guard.py``) calls it before
a request body is read and keeps the answer in the request state; the route dependencies
(``deps.py``) read it from there, so a request is authenticated once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from copilot.domain import User
from copilot.identity.sessions import COOKIE_NAME, WebSession

if TYPE_CHECKING:
    from copilot.container import Container as Services

STATE_KEY = "copilot_credential"  # in scope["state"]: the Credential, or None when there is none


@dataclass(frozen=True, slots=True)
class Credential:
    user: User
    via: Literal["bearer", "cookie"]
    session: WebSession | None = None  # the web session, for cookie credentials


def session_cookie(headers: Headers) -> str | None:
    raw = headers.get("cookie")
    return cookie_parser(raw).get(COOKIE_NAME) if raw else None


def resolve(services: Services, headers: Headers) -> Credential | None:
    """The caller's credential, or None. An ``Authorization`` header wins over a cookie (and a
    malformed one is not silently replaced by the cookie)."""
    header = headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = services.users.authenticate(token.strip())
        return Credential(user, "bearer") if user is not None else None
    session = services.web_sessions.resolve(session_cookie(headers))
    return Credential(session.user, "cookie", session) if session is not None else None


def cached(scope: dict[str, Any]) -> tuple[bool, Credential | None]:
    """(whether the guard already resolved this request's credential, the credential)."""
    state = scope.get("state") or {}
    return (STATE_KEY in state, state.get(STATE_KEY))


def remember(scope: dict[str, Any], credential: Credential | None) -> None:
    scope.setdefault("state", {})[STATE_KEY] = credential

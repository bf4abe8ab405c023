"""One-time, short-lived login codes: what a login link carries instead of an API token.

    codes = LoginCodes(engine, users, ttl=timedelta(minutes=10))
    code = codes.mint("u_rep_li")        # `copilot users login-link u_rep_li`, `copilot run`
    codes.redeem(code)                   # GET /login?code=… → ("u_rep_li", token id) once, then None

A code is stored hashed and works once, within ``ttl``. Minting one issues a dedicated API token
(label ``login-link``; its secret is thrown away) and the code is bound to it, so the web session
the code opens is bound to that token: ``copilot users revoke USER`` ends it like any other.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from copilot.identity.users import TOKEN_PREFIX, UserDirectory
from copilot.storage.tables import login_codes

CODE_PREFIX = "lc_"
LINK_TOKEN_LABEL = "login-link"  # noqa: S105 - a label, not a secret
_MAX_CODE = 64


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    """The public id part of an API token (``cpt_<id>_<secret>``), or None if it has not that shape."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    return token_id if prefix == TOKEN_PREFIX and token_id and secret else None


class LoginCodes:
    def __init__(
        self,
        engine: Engine,
        users: UserDirectory,
        *,
        ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._users = users
        self.ttl = ttl
        self._clock = clock

    def mint(self, user_id: str) -> str:
        """A fresh code for ``user_id``; LookupError if there is no such user."""
        token = self._users.issue_token(user_id, label=LINK_TOKEN_LABEL)  # raises LookupError
        token_id = token_id_of(token)
        assert token_id is not None
        code = CODE_PREFIX + secrets.token_urlsafe(24)
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                insert(login_codes).values(
                    id=_hash(code),
                    user_id=user_id,
                    token_id=token_id,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        return code

    def redeem(self, code: str | None) -> tuple[str, str] | None:
        """(user id, token id) the first time a live ``code`` is presented; None ever after."""
        if not code or len(code) > _MAX_CODE or not code.startswith(CODE_PREFIX):
            return None
        cid, now, c = _hash(code), self._clock(), login_codes.c
        with self._engine.begin() as conn:
            used = conn.execute(
                update(login_codes)
                .where(c.id == cid, c.used_at.is_(None), c.expires_at > now)
                .values(used_at=now)
            ).rowcount
            if used != 1:  # unknown, already used (also by a concurrent request) or expired
                return None
            row = conn.execute(select(c.user_id, c.token_id).where(c.id == cid)).one()
        return row.user_id, row.token_id

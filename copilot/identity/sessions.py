"""Server-side web sessions: a random cookie whose hash names a row, bound to the token that made it.

    store = SessionStore(engine, users, idle=timedelta(hours=12), absolute=timedelta(days=7))
    cookie, session = store.start(user_id, token_id)   # the login page (token or one-time code)
    store.resolve(cookie)                              # every request: the session, or None
    store.end(cookie)                                  # logout

A session is alive while its row is not ended, it was used within ``idle`` and started within
``absolute``, its user still exists and the API token it is bound to is not revoked. So logging out,
``copilot users revoke USER`` (every token of the user) and revoking the one token all end it at
once, on every API process, with nothing cached. Each session carries its own CSRF token, which the
pages send back in the ``X-CSRF-Token`` header on every state-changing request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from copilot.domain import User
from copilot.identity.users import UserDirectory
from copilot.storage.tables import api_tokens, web_sessions

COOKIE_NAME = "copilot_session"
_PREFIX = "cps_"
_MAX_COOKIE = 128  # ours are 47 characters; anything much longer is not ours
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often per session


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; everything here is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WebSession:
    id: str  # the row id (hash of the cookie), never the cookie itself
    user: User
    token_id: str
    csrf_token: str


class SessionStore:
    def __init__(
        self,
        engine: Engine,
        users: UserDirectory,
        *,
        idle: timedelta,
        absolute: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._users = users
        self.idle = idle
        self.absolute = absolute
        self._clock = clock

    def start(self, user_id: str, token_id: str) -> tuple[str, WebSession]:
        """A new session for ``user_id`` bound to API token ``token_id``: (cookie value, session)."""
        user = self._users.get(user_id)
        if user is None:
            raise LookupError(user_id)
        cookie = _PREFIX + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                insert(web_sessions).values(
                    id=_hash(cookie), user_id=user_id, token_id=token_id, csrf_token=csrf,
                    created_at=now, last_seen_at=now,
                )
            )  # fmt: skip
        return cookie, WebSession(_hash(cookie), user, token_id, csrf)

    def resolve(self, cookie: str | None) -> WebSession | None:
        """The live session of ``cookie``, or None (unknown, ended, idle or too old, token revoked)."""
        if not cookie or len(cookie) > _MAX_COOKIE or not cookie.startswith(_PREFIX):
            return None
        sid = _hash(cookie)
        s, tok = web_sessions.c, api_tokens.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(s.user_id, s.token_id, s.csrf_token, s.created_at, s.last_seen_at, s.ended_at,
                       tok.revoked_at, tok.user_id.label("token_user"))
                .select_from(web_sessions.outerjoin(api_tokens, tok.id == s.token_id))
                .where(s.id == sid)
            ).first()  # fmt: skip
        if row is None or row.ended_at is not None:
            return None
        if row.token_user != row.user_id or row.revoked_at is not None:  # no token, or revoked
            return None
        now = self._clock()
        last_seen = _utc(row.last_seen_at)
        if now - last_seen > self.idle or now - _utc(row.created_at) > self.absolute:
            return None
        user = self._users.get(row.user_id)
        if user is None:
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self._engine.begin() as conn:
                conn.execute(update(web_sessions).where(s.id == sid).values(last_seen_at=now))
        return WebSession(sid, user, row.token_id, row.csrf_token)

    def end(self, cookie: str | None) -> bool:
        if not cookie or len(cookie) > _MAX_COOKIE:
            return False
        return self._end(web_sessions.c.id == _hash(cookie)) > 0

    def end_for_user(self, user_id: str) -> int:
        """End every session of ``user_id`` (``copilot users revoke``)."""
        return self._end(web_sessions.c.user_id == user_id)

    def end_for_token(self, token_id: str) -> int:
        return self._end(web_sessions.c.token_id == token_id)

    def _end(self, where) -> int:
        with self._engine.begin() as conn:
            stmt = update(web_sessions).where(where, web_sessions.c.ended_at.is_(None))
            return conn.execute(stmt.values(ended_at=self._clock())).rowcount

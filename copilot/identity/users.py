"""Teams, users, API tokens, and who may see what."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from copilot.domain import ROLES, User
from copilot.storage import tables as t

TOKEN_PREFIX = "cpt"  # noqa: S105 - a public prefix, not a secret


def _hash(secret: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


class UserDirectory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- people ----------------------------------------------------------------
    def upsert_team(self, team_id: str, name: str) -> None:
        with self._engine.begin() as conn:
            if conn.execute(select(t.teams.c.id).where(t.teams.c.id == team_id)).first():
                conn.execute(update(t.teams).where(t.teams.c.id == team_id).values(name=name))
            else:
                conn.execute(insert(t.teams).values(id=team_id, name=name))

    def upsert_user(self, record: dict[str, Any]) -> None:
        known = {"id", "name", "role", "team_id", "wecom_userid", "dingtalk_userid"}
        role = str(record.get("role") or "rep")
        if role not in ROLES:
            raise ValueError(f"未知角色 {role!r}，可选：{', '.join(ROLES)}")
        row = {
            "id": str(record["id"]),
            "name": str(record.get("name") or record["id"]),
            "role": role,
            "team_id": record.get("team_id"),
            "wecom_userid": record.get("wecom_userid"),
            "dingtalk_userid": record.get("dingtalk_userid"),
            "custom": {k: v for k, v in record.items() if k not in known},
        }
        with self._engine.begin() as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.id == row["id"])).first():
                conn.execute(update(t.users).where(t.users.c.id == row["id"]).values(**row))
            else:
                conn.execute(insert(t.users).values(**row))

    def get(self, user_id: str) -> User | None:
        with self._engine.connect() as conn:
            r = conn.execute(select(t.users).where(t.users.c.id == user_id)).mappings().first()
        return User(r["id"], r["name"], r["role"], r["team_id"]) if r else None

    def by_channel_id(
        self, *, wecom_userid: str | None = None, dingtalk_userid: str | None = None
    ) -> User | None:
        col, value = (
            (t.users.c.wecom_userid, wecom_userid)
            if wecom_userid
            else (t.users.c.dingtalk_userid, dingtalk_userid)
        )
        if not value:
            return None
        with self._engine.connect() as conn:
            r = conn.execute(select(t.users).where(col == value)).mappings().first()
        return User(r["id"], r["name"], r["role"], r["team_id"]) if r else None

    def channel_ids(self, user_id: str) -> dict[str, str]:
        """The user's bound chat accounts: {"wecom": userid, "dingtalk": staffId}, those that are set."""
        with self._engine.connect() as conn:
            r = conn.execute(
                select(t.users.c.wecom_userid, t.users.c.dingtalk_userid).where(t.users.c.id == user_id)
            ).first()
        if r is None:
            return {}
        return {name: value for name, value in (("wecom", r[0]), ("dingtalk", r[1])) if value}

    def team_members(self, team_id: str | None) -> set[str]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.users.c.id).where(t.users.c.team_id == team_id)).all()
        return {r[0] for r in rows}

    def teams(self) -> dict[str, str]:
        """Every team: {id: name}."""
        with self._engine.connect() as conn:
            return {r.id: r.name for r in conn.execute(select(t.teams.c.id, t.teams.c.name))}

    def count(self) -> int:
        with self._engine.connect() as conn:
            return len(conn.execute(select(t.users.c.id)).all())

    # -- scoping -----------------------------------------------------------------
    def visible_owner_ids(self, user: User) -> set[str] | None:
        """Owners whose customers ``user`` may see: a rep their own, a manager the team's; None = all."""
        if user.role == "admin":
            return None
        if user.role == "manager":
            return self.team_members(user.team_id) | {user.id}
        return {user.id}

    @staticmethod
    def visible_teams(user: User) -> set[str] | None:
        """Teams whose documents ``user`` may read (documents marked ``all`` are always readable)."""
        if user.role == "admin":
            return None
        return {user.team_id} if user.team_id else set()

    # -- tokens ----------------------------------------------------------------
    def issue_token(self, user_id: str, *, label: str = "") -> str:
        if self.get(user_id) is None:
            raise LookupError(user_id)
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            conn.execute(
                insert(t.api_tokens).values(
                    id=token_id,
                    user_id=user_id,
                    token_hash=_hash(secret),
                    label=label,
                    created_at=datetime.now(UTC),
                )
            )
        return f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def authenticate(self, token: str) -> User | None:
        try:
            prefix, token_id, secret = token.split("_", 2)
        except ValueError:
            return None
        if prefix != TOKEN_PREFIX:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token_id)).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["token_hash"], _hash(secret)):
            return None
        return self.get(row["user_id"])

    def revoke_tokens(self, user_id: str, token_id: str | None = None) -> int:
        stmt = update(t.api_tokens).where(
            t.api_tokens.c.user_id == user_id, t.api_tokens.c.revoked_at.is_(None)
        )
        if token_id:
            stmt = stmt.where(t.api_tokens.c.id == token_id)
        with self._engine.begin() as conn:
            return conn.execute(stmt.values(revoked_at=datetime.now(UTC))).rowcount

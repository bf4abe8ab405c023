"""Identity's own tables: server-side web sessions and one-time login codes.

Declared on the copilot's one ``metadata`` so Alembic (revision 0009) and ``create_all`` see them.
Neither table stores a usable secret: the session cookie and the login code are kept as SHA-256
hashes only, like API tokens.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table

from copilot.storage.tables import metadata

# A browser session. It is bound to the API token that created it (directly, by pasting a token on
# the login page, or through a login code minted with one): revoking that token ends the session.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie value
    Column("user_id", String(64), nullable=False, index=True),
    Column("token_id", String(32), nullable=False, index=True),  # api_tokens.id of the credential
    Column("csrf_token", String(64), nullable=False),  # sent back in X-CSRF-Token on every change
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)

# A one-time, short-lived login code (the link printed by `copilot users login-link` / `copilot run`).
login_codes = Table(
    "login_codes",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the code
    Column("user_id", String(64), nullable=False, index=True),
    Column("token_id", String(32), nullable=False),  # the session it opens is bound to this token
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
)

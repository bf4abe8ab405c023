"""Fresh, migrated PostgreSQL databases for tests, fast: one database is migrated once (the template),
and each test gets its own copy (``CREATE DATABASE … TEMPLATE``, ~0.2 s instead of ~1 s to migrate).
The next copy is made, and the last one dropped, on a background thread while the test runs.

    databases = TemplateDatabases(admin_url)      # Unreachable if PostgreSQL does not answer
    url = databases.take()                         # a fresh database of its own
    databases.release(url)                         # dropped in the background
    databases.close()                              # waits for the drops; drops the template
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

__all__ = ["TemplateDatabases", "Unreachable"]


class Unreachable(RuntimeError):
    """PostgreSQL did not answer at the admin URL."""


class TemplateDatabases:
    def __init__(self, admin_url: str, *, prefix: str = "copilot_test") -> None:
        from copilot.storage.db import make_engine, migrate

        self._base = admin_url.rsplit("/", 1)[0]
        self._prefix = prefix
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.template = f"{prefix}_tmpl_{uuid.uuid4().hex[:10]}"
        try:
            self._sql(f'CREATE DATABASE "{self.template}"')
        except OperationalError as exc:
            self._admin.dispose()
            raise Unreachable(admin_url) from exc
        engine = make_engine(self.url(self.template))
        migrate(engine)
        engine.dispose()  # a template must have no sessions while it is copied
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-databases")
        self._next: Future[str] = self._worker.submit(self._copy)

    def url(self, name: str) -> str:
        return f"{self._base}/{name}"

    def take(self) -> str:
        """The URL of a fresh copy of the template (and start making the next one)."""
        name = self._next.result()
        self._next = self._worker.submit(self._copy)
        return self.url(name)

    def release(self, url: str) -> None:
        self._worker.submit(self._drop, url.rsplit("/", 1)[1])

    def close(self) -> None:
        spare = self._next.result()
        self._worker.submit(self._drop, spare)
        self._worker.submit(self._drop, self.template)
        self._worker.shutdown(wait=True)
        self._admin.dispose()

    def _copy(self) -> str:
        name = f"{self._prefix}_{uuid.uuid4().hex[:10]}"
        self._sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def _drop(self, name: str) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _sql(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(statement))

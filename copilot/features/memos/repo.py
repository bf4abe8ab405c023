"""The ``memos`` table and the upload folder: the one module that reads and writes memo rows.

The upload is written (fsync'd, mode 0600, our own file name) before its row exists, and is never
deleted by the pipeline, so a memo that fails or whose process dies is not lost. The agent reads the
done memos of a customer through ``done_memos``/``customer_of`` (``copilot.agent.evidence.MemoSource``).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update

from copilot.agent.facts import MemoView, Segment, parse_day
from copilot.storage import tables as t
from copilot.voice.decode import detect_format
from copilot.voice.extract import script_segments

PENDING = ("queued", "processing")


def new_memo_id() -> str:
    return f"memo_{secrets.token_hex(8)}"


class MemoRepo:
    def __init__(self, engine: Engine, uploads_dir: Path | None = None) -> None:
        self.engine = engine
        self.uploads_dir = Path(uploads_dir) if uploads_dir is not None else None  # None: read-only

    # -- uploads -----------------------------------------------------------------------------------
    def _uploads(self) -> Path:
        if self.uploads_dir is None:
            raise RuntimeError("this MemoRepo has no uploads folder (read-only)")
        return self.uploads_dir

    def store_upload(self, memo_id: str, data: bytes) -> Path:
        # The name is ours (id + sniffed format), never the client's file name.
        self._uploads().mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._uploads() / f"{memo_id}.{detect_format(data) or 'bin'}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return path

    def create(self, *, customer_id: str | None, user_id: str, recorded_at: datetime, data: bytes) -> str:
        """Store the upload, then its row (queued); the memo id."""
        memo_id = new_memo_id()
        path = self.store_upload(memo_id, data)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.memos).values(
                    id=memo_id, customer_id=customer_id, user_id=user_id, recorded_at=recorded_at.isoformat(),
                    status="queued", transcript="", segments=[], audio_path=os.fspath(path),
                    created_at=datetime.now(UTC),
                )
            )  # fmt: skip
        return memo_id

    # -- rows --------------------------------------------------------------------------------------
    def get(self, memo_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.memos).where(t.memos.c.id == memo_id)).first()

    def update(self, memo_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.memos).where(t.memos.c.id == memo_id).values(**values))

    def latest_of(self, user_id: str) -> str | None:
        """The user's most recent memo (what 「更正：…」 in a chat refers to)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.memos.c.id)
                .where(t.memos.c.user_id == user_id)
                .order_by(t.memos.c.created_at.desc())
                .limit(1)
            ).scalar()

    def pending_ids(self) -> list[str]:
        """Memos a previous process left queued or processing whose upload is on disk."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.memos.c.id).where(t.memos.c.status.in_(PENDING), t.memos.c.audio_path.is_not(None))
            )
            return [r.id for r in rows]

    # -- what the agent reads (MemoSource) -----------------------------------------------------------
    def done_memos(self, customer_id: str) -> list[MemoView]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.memos.c.id, t.memos.c.recorded_at, t.memos.c.transcript, t.memos.c.segments,
                       t.memos.c.visit_record)
                .where(t.memos.c.customer_id == customer_id)
                .where(t.memos.c.status == "done")
            ).all()  # fmt: skip
        out = []
        for r in rows:
            segments = tuple(
                Segment(float(s.get("start", 0)), float(s.get("end", 0)), str(s.get("text", "")))
                for s in (r.segments or [])
                if isinstance(s, dict) and str(s.get("text", "")).strip()
            )
            if not segments and (r.transcript or "").strip():  # imported transcript: one segment a sentence
                segments = tuple(Segment(s.start, s.end, s.text) for s in script_segments(r.transcript))
            record = r.visit_record if isinstance(r.visit_record, dict) else None
            out.append(MemoView(r.id, parse_day(r.recorded_at), r.transcript or "", segments, record))
        return out

    def customer_of(self, memo_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.memos.c.customer_id).where(t.memos.c.id == memo_id)).scalar()

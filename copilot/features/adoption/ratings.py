"""Talk-track ratings: a rep rates a cited passage 有效 / 部分有效 / 无效 with a reason.

Ratings feed retrieval ranking through ``KnowledgeBase.set_boosts({chunk_id: b})``: each chunk's boost
is its mean rating (有效 +1, 部分有效 +0.3, 无效 −1), shrunk towards 0 by two phantom neutral ratings
so one vote moves a passage a little and many votes move it more, scaled to ±``MAX_BOOST``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, func, insert, select, update

from copilot.domain import User
from copilot.errors import AppError
from copilot.storage import tables as t
from copilot.storage.tables import talk_track_ratings as tr

logger = logging.getLogger(__name__)

RATINGS = {"有效": "effective", "部分有效": "partial", "无效": "ineffective"}
LABELS = {v: k for k, v in RATINGS.items()}
SCORES = {"effective": 1.0, "partial": 0.3, "ineffective": -1.0}
PRIOR = 2  # phantom neutral ratings
MAX_BOOST = 0.5


class Boostable(Protocol):
    def set_boosts(self, boosts: Mapping[str, float]) -> None: ...


def rating_code(value: str) -> str:
    value = (value or "").strip()
    if value in RATINGS:
        return RATINGS[value]
    if value in LABELS:
        return value
    raise AppError("validation_error", f"评价只能是：{'、'.join(RATINGS)}")


def boost_for(ratings: list[str]) -> float:
    if not ratings:
        return 0.0
    score = sum(SCORES[r] for r in ratings) / (len(ratings) + PRIOR)
    return round(MAX_BOOST * score, 4)


@dataclass(frozen=True, slots=True)
class Rating:
    chunk_id: str
    source: str
    user_id: str
    rating: str
    reason: str
    suggestion_id: str | None
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "source": self.source,
            "user_id": self.user_id,
            "rating": LABELS[self.rating],
            "rating_code": self.rating,
            "reason": self.reason,
            "suggestion_id": self.suggestion_id,
            "created_at": self.created_at,
        }


class RatingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rate(self, user: User, *, chunk_id: str, rating: str, reason: str = "",
             suggestion_id: str | None = None, visible_teams: set[str] | None = None) -> Rating:  # fmt: skip
        """Store (or replace) ``user``'s rating of a passage the user may read."""
        from knowledge_base.catalog import Catalog
        from knowledge_base.retrieval import document_allowed

        code = rating_code(rating)
        catalog = Catalog(self.engine)
        chunk = catalog.get_chunk(chunk_id)
        doc = catalog.document(chunk.doc_path) if chunk else None
        if chunk is None or doc is None or not document_allowed(doc, visible_teams):
            raise AppError("not_found", "知识库段落不存在或无权查看。")
        if suggestion_id:
            with self.engine.connect() as conn:
                owner = conn.execute(
                    select(t.suggestions.c.user_id).where(t.suggestions.c.id == suggestion_id)
                ).scalar()
            if owner != user.id:
                raise AppError("not_found", "建议不存在。")
        now = datetime.now(UTC)
        values = {"source": doc.path, "rating": code, "reason": (reason or "").strip()[:1000],
                  "suggestion_id": suggestion_id or None, "created_at": now}  # fmt: skip
        with self.engine.begin() as conn:
            key = (tr.c.user_id == user.id) & (tr.c.chunk_id == chunk_id)
            if conn.execute(select(tr.c.id).where(key)).first():
                conn.execute(update(tr).where(key).values(**values))
            else:
                conn.execute(insert(tr).values(user_id=user.id, chunk_id=chunk_id, **values))
        logger.info("talk track %s rated %s by user %s", chunk_id, code, user.id)
        return Rating(chunk_id, doc.path, user.id, code, values["reason"], values["suggestion_id"],
                      now.isoformat(timespec="seconds"))  # fmt: skip

    def boosts(self) -> dict[str, float]:
        by_chunk: dict[str, list[str]] = defaultdict(list)
        with self.engine.connect() as conn:
            for chunk_id, rating in conn.execute(select(tr.c.chunk_id, tr.c.rating)):
                by_chunk[chunk_id].append(rating)
        return {cid: b for cid, ratings in by_chunk.items() if (b := boost_for(ratings))}

    def sync(self, kb: Boostable | None) -> dict[str, float]:
        """Push the current boosts into the knowledge base (call after rating and when the KB loads)."""
        boosts = self.boosts()
        if kb is not None:
            kb.set_boosts(boosts)
        return boosts

    def per_document(self, user_ids: set[str] | None = None) -> dict[str, dict[str, int]]:
        """``{source: {"effective": n, "partial": n, "ineffective": n}}`` for raters in ``user_ids``."""
        query = select(tr.c.source, tr.c.rating, func.count()).group_by(tr.c.source, tr.c.rating)
        if user_ids is not None:
            query = query.where(tr.c.user_id.in_(sorted(user_ids)))
        out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SCORES, 0))
        with self.engine.connect() as conn:
            for source, rating, n in conn.execute(query):
                out[source][rating] = n
        return dict(out)

    def list(self, user_ids: set[str] | None = None, source: str | None = None) -> list[Rating]:
        query = select(tr).order_by(tr.c.created_at.desc())
        if user_ids is not None:
            query = query.where(tr.c.user_id.in_(sorted(user_ids)))
        if source:
            query = query.where(tr.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Rating(r.chunk_id, r.source, r.user_id, r.rating, r.reason, r.suggestion_id,
                       str(r.created_at)[:19]) for r in rows]  # fmt: skip

"""Managers' review of suggestions (the 决策沙盒): correct / wrong / harmful with a note.

Annotations show in the adoption metrics and become eval cases (DESIGN §5.3 suggest cases): a
suggestion judged correct is an expected action citing what it cited; wrong or harmful ones are
forbidden actions carrying the manager's note.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from copilot.domain import User
from copilot.errors import AppError
from copilot.storage import tables as t
from copilot.storage.tables import suggestion_annotations as sa_

logger = logging.getLogger(__name__)
VERDICTS = {"correct": "正确", "wrong": "错误", "harmful": "有害"}
_BY_LABEL = {v: k for k, v in VERDICTS.items()}


@dataclass(frozen=True, slots=True)
class Annotation:
    suggestion_id: str
    user_id: str
    verdict: str
    note: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {"suggestion_id": self.suggestion_id, "user_id": self.user_id, "verdict": self.verdict,
                "verdict_label": VERDICTS[self.verdict], "note": self.note, "created_at": self.created_at}  # fmt: skip


def verdict_code(value: str) -> str:
    value = (value or "").strip()
    if value in VERDICTS:
        return value
    if value in _BY_LABEL:
        return _BY_LABEL[value]
    raise AppError("validation_error", "评审结论只能是 correct（正确）/ wrong（错误）/ harmful（有害）。")


class AnnotationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def annotate(self, manager: User, suggestion_id: str, verdict: str, note: str,
                 *, owner_ids: set[str] | None) -> Annotation:  # fmt: skip
        """Record (or replace) ``manager``'s verdict on a suggestion of someone the manager oversees."""
        code = verdict_code(verdict)
        note = (note or "").strip()[:2000]
        if code in ("wrong", "harmful") and not note:
            raise AppError("validation_error", "判定为错误或有害时，请写明原因。")
        with self.engine.begin() as conn:
            owner = conn.execute(
                select(t.suggestions.c.user_id).where(t.suggestions.c.id == suggestion_id)
            ).scalar()
            if owner is None or (owner_ids is not None and owner not in owner_ids):
                raise AppError("not_found", "建议不存在。")
            now = datetime.now(UTC)
            key = (sa_.c.user_id == manager.id) & (sa_.c.suggestion_id == suggestion_id)
            if conn.execute(select(sa_.c.id).where(key)).first():
                conn.execute(update(sa_).where(key).values(verdict=code, note=note, created_at=now))
            else:
                conn.execute(insert(sa_).values(suggestion_id=suggestion_id, user_id=manager.id,
                                                verdict=code, note=note, created_at=now))  # fmt: skip
        logger.info("suggestion %s annotated %s by user %s", suggestion_id, code, manager.id)
        return Annotation(suggestion_id, manager.id, code, note, now.isoformat(timespec="seconds"))

    def check_scope(self, suggestion_id: str, owner_ids: set[str] | None) -> None:
        with self.engine.connect() as conn:
            owner = conn.execute(
                select(t.suggestions.c.user_id).where(t.suggestions.c.id == suggestion_id)
            ).scalar()
        if owner is None or (owner_ids is not None and owner not in owner_ids):
            raise AppError("not_found", "建议不存在。")

    def for_suggestions(self, ids: set[str]) -> dict[str, list[Annotation]]:
        out: dict[str, list[Annotation]] = {}
        if not ids:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sa_).where(sa_.c.suggestion_id.in_(sorted(ids))).order_by(sa_.c.created_at)
            ).all()
        for r in rows:
            out.setdefault(r.suggestion_id, []).append(
                Annotation(r.suggestion_id, r.user_id, r.verdict, r.note, str(r.created_at)[:19])
            )
        return out


def annotation_counts(annotations: dict[str, list[Annotation]]) -> dict[str, int]:
    c = Counter(a.verdict for items in annotations.values() for a in items)
    return {v: c[v] for v in VERDICTS}


def eval_case(suggestion: Any, annotation: Annotation) -> dict[str, Any]:
    """One annotated suggestion → a DESIGN §5.3 suggest case."""
    created = suggestion.created_at
    as_of = created.date().isoformat() if hasattr(created, "date") else str(created)[:10]
    must_cite = []
    for c in suggestion.citations or ():
        kind, source = c.get("kind"), c.get("source") or c.get("ref")
        cite = f"{kind}:{source}"
        if kind in ("kb", "crm", "memo") and source and cite not in must_cite:
            must_cite.append(cite)
    case: dict[str, Any] = {"id": f"review_{suggestion.id}_{annotation.user_id}", "customer_id": suggestion.customer_id,
                            "as_of": as_of, "expected_actions": [], "forbidden": []}  # fmt: skip
    if annotation.verdict == "correct":
        case["expected_actions"].append({"action_type": suggestion.action_type, "must_cite": must_cite})
    else:
        detail = f"{VERDICTS[annotation.verdict]}：{annotation.note}（原建议：{suggestion.title}）"
        case["forbidden"].append({"action_type": suggestion.action_type, "detail": detail})
    return case

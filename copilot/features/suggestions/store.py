"""The suggestion log: suggestions stored once per user and fingerprint, and their events.

Asking again returns the open suggestions, refreshed; the same suggestion (same customer, action type
and evidence) is stored once per user, so adoption counts stay honest (DESIGN §7). Events: proposed →
shown → accepted / edited / dismissed → applied.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from copilot.agent.offline_planner import clean_change, fingerprint
from copilot.domain import Citation, ProposedChange, Suggestion
from copilot.errors import AppError
from copilot.features.writeback.change_fields import InvalidChange, validate_change
from copilot.storage import tables as t

logger = logging.getLogger(__name__)
OPEN = ("proposed", "accepted", "edited")
FEEDBACK = {"accept": "accepted", "edit": "edited", "dismiss": "dismissed"}


def _citation(c: dict[str, Any]) -> Citation:
    return Citation(
        c["kind"], c["ref"], c.get("locator", ""), c.get("source", ""), c["quote"], c.get("label", "")
    )


def row_to_suggestion(row: Any) -> Suggestion:
    change = row.proposed_change
    created = row.created_at
    return Suggestion(
        id=row.id,
        customer_id=row.customer_id,
        action_type=row.action_type,
        title=row.title,
        rationale=row.rationale,
        confidence=row.confidence,
        citations=tuple(_citation(c) for c in row.citations or []),
        proposed_change=ProposedChange(change["op"], dict(change.get("fields") or {})) if change else None,
        status=row.status,
        created_at=_iso(created),
    )


def _iso(moment: Any) -> str:
    """As a new suggestion shows it (``2026-12-07T09:57:49+00:00``), whether the database kept the time
    zone (PostgreSQL) or not (SQLite returns a naive UTC time with microseconds)."""
    if not isinstance(moment, datetime):
        return str(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def _change_json(change: ProposedChange | None) -> dict[str, Any] | None:
    return {"op": change.op, "fields": change.fields} if change else None


class SuggestionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def suggestion_id(user_id: str, fp: str) -> str:
        return "sg_" + hashlib.sha256(f"{user_id}|{fp}".encode()).hexdigest()[:20]

    def _event(self, conn: Connection, sid: str, user_id: str, event: str, *, channel: str | None = None,
               detail: dict[str, Any] | None = None) -> None:  # fmt: skip
        conn.execute(
            insert(t.suggestion_events).values(
                suggestion_id=sid,
                user_id=user_id,
                event=event,
                channel=channel,
                detail=detail,
                created_at=datetime.now(UTC),
            )
        )

    def upsert(self, user_id: str, suggestions: list[Suggestion]) -> list[Suggestion]:
        """Store new suggestions (event ``proposed``), refresh known open ones; dismissed/applied stay hidden."""
        out: list[Suggestion] = []
        for s in suggestions:
            for _attempt in range(2):
                try:
                    stored = self._upsert_one(user_id, s)
                    break
                except IntegrityError:  # a concurrent request stored the same fingerprint first
                    continue
            else:  # pragma: no cover - two races in a row
                stored = None
            if stored is not None and stored.status in OPEN:
                out.append(stored)
        return out

    def _upsert_one(self, user_id: str, s: Suggestion) -> Suggestion | None:
        fp = fingerprint(s.customer_id, s.action_type, s.citations)
        now = datetime.now(UTC)
        citations = [c.to_json() for c in s.citations]
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.suggestions).where(
                    t.suggestions.c.user_id == user_id, t.suggestions.c.fingerprint == fp
                )
            ).first()
            if row is None:
                sid = self.suggestion_id(user_id, fp)
                conn.execute(
                    insert(t.suggestions).values(
                        id=sid,
                        customer_id=s.customer_id,
                        user_id=user_id,
                        action_type=s.action_type,
                        title=s.title,
                        rationale=s.rationale,
                        confidence=s.confidence,
                        citations=citations,
                        proposed_change=_change_json(s.proposed_change),
                        status="proposed",
                        fingerprint=fp,
                        created_at=now,
                        updated_at=now,
                    )  # fmt: skip
                )
                self._event(conn, sid, user_id, "proposed")
                logger.info("suggestion %s proposed for customer %s", sid, s.customer_id)
                return replace(s, id=sid, status="proposed", created_at=now.isoformat(timespec="seconds"))
            if row.status not in OPEN:
                return row_to_suggestion(row)
            values: dict[str, Any] = {"citations": citations, "confidence": s.confidence, "updated_at": now}
            if row.status != "edited" and not self.was_edited(conn, row.id):  # keep the rep's own wording
                values.update(
                    title=s.title, rationale=s.rationale, proposed_change=_change_json(s.proposed_change)
                )
            conn.execute(update(t.suggestions).where(t.suggestions.c.id == row.id).values(**values))
            fresh = conn.execute(select(t.suggestions).where(t.suggestions.c.id == row.id)).one()
            return row_to_suggestion(fresh)

    def mark_shown(self, user_id: str, ids: list[str], *, channel: str | None = None) -> None:
        """Log ``shown`` once per suggestion (re-asking must not inflate adoption's denominator)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            done = set(
                conn.execute(
                    select(t.suggestion_events.c.suggestion_id).where(
                        t.suggestion_events.c.suggestion_id.in_(ids), t.suggestion_events.c.event == "shown"
                    )
                ).scalars()
            )
            for sid in ids:
                if sid not in done:
                    self._event(conn, sid, user_id, "shown", channel=channel)

    def get(self, sid: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).first()

    def feedback(self, user_id: str, sid: str, action: str, *, comment: str | None, edited: dict[str, Any] | None,
                 channel: str | None = None) -> Suggestion:  # fmt: skip
        status = FEEDBACK[action]
        with self.engine.begin() as conn:
            row = conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).first()
            if row is None or row.user_id != user_id:
                raise AppError("not_found", "建议不存在。")
            if row.status in ("dismissed", "applied") and row.status != status:
                raise AppError(
                    "conflict",
                    f"该建议已{'忽略' if row.status == 'dismissed' else '执行'}，不能再修改。",
                    status=409,
                )
            values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
            changes = edit_values(row, edited) if action == "edit" and edited else {}
            changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
            values.update(changes)
            conn.execute(update(t.suggestions).where(t.suggestions.c.id == sid).values(**values))
            detail: dict[str, Any] = {
                k: v for k, v in {"comment": comment, "edited_fields": sorted(edited or {})}.items() if v
            }
            if changes:  # what the rep changed, from what: the audit of the CRM write cites the original
                detail["original"] = {k: getattr(row, k) for k in changes}
                detail["edited"] = changes
            self._event(conn, sid, user_id, status, channel=channel, detail=detail or None)
            fresh = conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).one()
        logger.info("suggestion %s %s by user %s", sid, status, user_id)
        return row_to_suggestion(fresh)

    @staticmethod
    def was_edited(conn: Connection, sid: str) -> bool:
        ev = t.suggestion_events.c
        return (
            conn.execute(select(ev.id).where(ev.suggestion_id == sid, ev.event == "edited").limit(1)).first()
            is not None
        )

    def edit_history(self, sid: str) -> dict[str, Any] | None:
        """The proposed change as first proposed, if the rep edited it since: ``{"original",
        "edits", "edited_at"}``; None when the change was never edited."""
        ev = t.suggestion_events.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ev.detail, ev.created_at)
                .where(ev.suggestion_id == sid, ev.event == "edited")
                .order_by(ev.id)
            ).all()
        edits = [r for r in rows if "proposed_change" in ((r.detail or {}).get("original") or {})]
        if not edits:
            return None
        at = edits[-1].created_at
        return {
            "original": edits[0].detail["original"]["proposed_change"],
            "edits": len(edits),
            "edited_at": at.isoformat() if hasattr(at, "isoformat") else str(at),
        }


def edit_values(row: Any, edited: dict[str, Any]) -> dict[str, Any]:
    """The columns a rep's edit changes. ``proposed_change`` may be partial (fields merged over the
    proposed ones, op kept when omitted) or None (no CRM change). A new title also becomes the
    title of a proposed task that carried the old title."""
    out: dict[str, Any] = {}
    if isinstance(edited.get("title"), str) and edited["title"].strip():
        out["title"] = edited["title"].strip()[:200]
    if isinstance(edited.get("rationale"), str):
        out["rationale"] = edited["rationale"].strip()[:1000]
    current = row.proposed_change or {}
    if "proposed_change" in edited:
        raw = edited["proposed_change"]
        if raw is None:
            out["proposed_change"] = None
            return out
        if not isinstance(raw, dict) or not isinstance(raw.get("fields", {}), dict):
            raise AppError("validation_error", "修改后的 CRM 变更不合法（op 或字段有误）。")
        op = raw.get("op") or current.get("op")
        base = dict(current.get("fields") or {}) if op == current.get("op") else {}
        given = raw.get("fields") or {}
        if given.get("customer_id", row.customer_id) != row.customer_id:  # the customer is the suggestion's
            raise AppError("validation_error", "不能修改客户：CRM 变更只能写入该建议所属的客户。")
        change = clean_change({"op": op, "fields": {**base, **given}}, row.customer_id)
        if change is None:
            raise AppError("validation_error", "修改后的 CRM 变更不合法（op 或字段有误）。")
        try:
            change = replace(change, fields=validate_change(change.op, change.fields))
        except InvalidChange as exc:
            raise AppError("validation_error", str(exc)) from None
        out["proposed_change"] = _change_json(change)
    elif "title" in out and current.get("op") == "create_task":
        fields = dict(current.get("fields") or {})
        if fields.get("title") == row.title:
            out["proposed_change"] = {"op": "create_task", "fields": {**fields, "title": out["title"]}}
    return out

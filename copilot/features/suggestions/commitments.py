"""Commitments and next steps in a customer's memos and visit notes, for the agent's ``Facts``.

A memo's stored visit record is used when it has one; an imported memo (transcript only) and every visit
note go through the offline extractor once (cached by text). Memos without a visit record get the
extracted one attached, so objections and competitors said in them are seen too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from connectors.crm.base import CustomerSnapshot
from copilot.agent.facts import Commitment, MemoView, parse_day
from copilot.voice.extract import ExtractionContext, extract_offline, script_segments

MAX_CACHE = 4096


class CommitmentFinder:
    """``enrich(snapshot, memos)`` → (memos with a visit record, commitments). Cached by text."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any]] = {}

    def _record(
        self, key: str, text: str, segments: Any, when: date, ctx: ExtractionContext
    ) -> dict[str, Any]:
        digest = hashlib.sha256(f"{key}\n{when}\n{text}".encode()).hexdigest()
        if digest not in self._cache:
            if len(self._cache) > MAX_CACHE:
                self._cache.clear()
            segs = list(segments) or script_segments(text)
            self._cache[digest] = extract_offline(segs, recorded_at=when, context=ctx).to_json()
        return self._cache[digest]

    def enrich(
        self, snapshot: CustomerSnapshot, memos: Iterable[MemoView]
    ) -> tuple[list[MemoView], list[Commitment]]:
        ctx = ExtractionContext.from_snapshots([snapshot], customer_id=snapshot.id)
        out_memos: list[MemoView] = []
        commitments: list[Commitment] = []
        for m in memos:
            record = m.visit_record
            if not (record and isinstance(record.get("next_steps"), list)) and m.recorded_on and m.transcript:
                record = self._record(f"memo:{m.id}", m.transcript, m.segments, m.recorded_on, ctx)
                m = replace(m, visit_record={**(m.visit_record or {}), **record})
            out_memos.append(m)
            for step in (record or {}).get("next_steps") or []:
                c = _commitment("memo", m.id, step, m.recorded_on)
                if c is not None:
                    commitments.append(c)
        for i, v in enumerate(snapshot.visits):
            day = parse_day(v.date)
            if day is None or not (v.notes or "").strip():
                continue
            record = self._record(f"visit:{snapshot.id}:{i}", v.notes, (), day, ctx)
            for step in record.get("next_steps") or []:
                c = _commitment("visit", v.date, step, day, index=i)
                if c is not None:
                    commitments.append(c)
        return out_memos, commitments


def _commitment(
    kind: str, ref: str, step: Any, recorded: date | None, index: int | None = None
) -> Commitment | None:
    if not isinstance(step, dict) or not str(step.get("action") or "").strip():
        return None
    if step.get("owner") not in (None, "", "我"):  # the customer's own to-dos are not the rep's follow-ups
        return None
    if index is None:
        segs = step.get("segments") or []
        index = segs[0].get("segment") if segs and isinstance(segs[0], dict) else None
    return Commitment(kind, ref, index, str(step["action"]).strip(), parse_day(step.get("due")), recorded)

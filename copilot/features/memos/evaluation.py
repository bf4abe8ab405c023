"""Evaluation wiring: the memo extractor ``evals.extraction.run_extraction`` takes as a parameter."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connectors.crm.base import CRM
from copilot.features.memos.draft import parse_when
from copilot.features.memos.hotwords import memo_hotwords
from copilot.voice.extract import ExtractionContext, extract_visit, script_segments

DEMO_CRM = Path(__file__).resolve().parents[2] / "demo" / "crm.json"


def _snapshots_from_json(data: Mapping[str, Any]) -> list[Any]:
    from connectors.crm.base import Contact, CustomerSnapshot, Opportunity

    out = []
    for c in data.get("customers") or []:
        out.append(
            CustomerSnapshot(
                id=c["id"], name=c["name"], owner_user_id=c.get("owner_user_id"),
                contacts=tuple(Contact(x["name"], x.get("role", ""), bool(x.get("is_decision_maker"))) for x in c.get("contacts") or []),
                opportunities=tuple(Opportunity(o["id"], o["name"], o["stage"], competitors=tuple(o.get("competitors") or ()))
                                    for o in c.get("opportunities") or []),
            )
        )  # fmt: skip
    return out


def eval_extractor(
    *, crm: CRM, transcriber: Callable[[], Any], llm: Any, kb: Any, embedder: Any = None
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``extract(row)`` for ``evals.extraction.run_extraction``: the memo's ``script`` (as sentence
    segments) or ``audio`` (transcribed) → the visit record in the gold shape. The CRM supplies names and
    competitors; when it is empty, the bundled demo CRM does (the dataset's customers come from it).
    ``embedder`` types the objections the lexicons cannot (as the pipeline does when it is loaded)."""
    snapshots = [s for s in (crm.get_customer(c.id) for c in crm.list_customers()) if s is not None]
    if not snapshots:
        snapshots = _snapshots_from_json(json.loads(DEMO_CRM.read_text(encoding="utf-8")))
    known_ids = {s.id for s in snapshots}

    def extract(row: Mapping[str, Any]) -> dict[str, Any]:
        customer_id = row.get("customer") if row.get("customer") in known_ids else None
        context = ExtractionContext.from_snapshots(snapshots, customer_id=customer_id)
        when = parse_when(row.get("recorded_at"))
        if row.get("audio"):
            segments = (
                transcriber().transcribe(Path(row["audio"]), hotwords=memo_hotwords(context, kb)).segments
            )
        else:
            segments = script_segments(row.get("script") or "")
        record = extract_visit(segments, recorded_at=when, context=context, llm=llm, embedder=embedder)
        return record.to_eval()

    return extract

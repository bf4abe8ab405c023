"""How a knowledge-base hit is shown in JSON (CLI `kb search --json` and `GET /api/kb/search`)."""

from __future__ import annotations

from knowledge_base.documents import Hit


def hit_json(hit: Hit) -> dict:
    doc, chunk = hit.document, hit.chunk
    return {
        "chunk_id": chunk.id,
        "document": doc.path,
        "title": doc.title,
        "date": doc.date,
        "type": doc.doc_type,
        "locator": chunk.locator.short(),
        "text": chunk.text,
        "score": round(float(hit.score), 6),
        "matched_terms": list(hit.matched_terms),
        "stale": hit.stale,
        "label": hit.label,
    }

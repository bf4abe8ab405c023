"""Retrieval evaluation (DESIGN §5.2). The system under test is a parameter:

* passages mode: ``index_factory(passages)`` returns a ready index, or ``index_factory()`` returns an
  empty one that the runner fills with ``add_passages(passages)``; ``search(query, k)`` returns passage
  ids or hits (a hit's ``chunk.doc_path`` / ``document.path`` is the passage id; duplicates collapse);
* docs mode: ``kb_factory(docs_dir)`` returns a ready knowledge base, or ``kb_factory()`` an empty one that
  the runner fills with ``ingest([docs_dir])``; ``search(query, k)`` returns hits with ``chunk.text`` and
  ``chunk.doc_path`` (or ``document.path``) — a hit counts when it comes from the query's gold ``doc``
  and contains every ``answer_contains`` string, whitespace ignored.

Both return ``{"n_queries","recall@1","recall@5","recall@10","mrr@10","ndcg@10","p50_ms","p95_ms"}``.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.metrics import mean, mrr_at_k, ndcg_at_k, percentile, recall_at_k

_WS = re.compile(r"\s+")
GOLD = "\0gold"


def load_jsonl(path: Path | str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _rows(data: Path | str | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return load_jsonl(data) if isinstance(data, str | Path) else list(data)


def _summary(
    rankings: list[tuple[Sequence[str], set[str]]], latencies_ms: list[float]
) -> dict[str, float | int]:
    return {
        "n_queries": len(rankings),
        "recall@1": round(mean([recall_at_k(r, rel, 1) for r, rel in rankings]), 4),
        "recall@5": round(mean([recall_at_k(r, rel, 5) for r, rel in rankings]), 4),
        "recall@10": round(mean([recall_at_k(r, rel, 10) for r, rel in rankings]), 4),
        "mrr@10": round(mean([mrr_at_k(r, rel, 10) for r, rel in rankings]), 4),
        "ndcg@10": round(mean([ndcg_at_k(r, rel, 10) for r, rel in rankings]), 4),
        "p50_ms": round(percentile(latencies_ms, 50), 1),
        "p95_ms": round(percentile(latencies_ms, 95), 1),
    }


def _takes_data(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def _ranked_ids(results: Iterable[Any]) -> list[str]:
    ids: list[str] = []
    for item in results:
        pid = item if isinstance(item, str) else _hit_path(item)
        if pid not in ids:
            ids.append(pid)
    return ids


def run_retrieval_passages(
    passages: Path | str | Iterable[Mapping[str, Any]],
    queries: Path | str | Iterable[Mapping[str, Any]],
    *,
    index_factory: Callable[[list[Mapping[str, Any]]], Any],
    k: int = 10,
) -> dict[str, float | int]:
    rows = _rows(passages)
    if _takes_data(index_factory):
        index = index_factory(rows)
    else:
        index = index_factory()
        index.add_passages(rows)
    depth = max(k, 10)
    rankings, latencies = [], []
    for query in _rows(queries):
        started = time.perf_counter()
        ranked = _ranked_ids(index.search(query["query"], k=depth))
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.append((ranked, {str(p) for p in query.get("positives", [])}))
    return _summary(rankings, latencies)


def _squash(text: str) -> str:
    return _WS.sub("", text)


def _hit_path(hit: Any) -> str:
    chunk = getattr(hit, "chunk", hit)
    path = getattr(chunk, "doc_path", None)
    if path is None and getattr(hit, "document", None) is not None:
        path = hit.document.path
    return str(path).replace("\\", "/")


def is_answer_hit(hit: Any, doc: str, answer_contains: Sequence[str]) -> bool:
    chunk = getattr(hit, "chunk", hit)
    text = _squash(getattr(chunk, "text", ""))
    return _hit_path(hit) == doc.replace("\\", "/") and all(_squash(a) in text for a in answer_contains)


def run_retrieval_docs(
    docs_dir: Path | str,
    queries: Path | str | Iterable[Mapping[str, Any]],
    *,
    kb_factory: Callable[[Path], Any],
    k: int = 10,
) -> dict[str, float | int]:
    if _takes_data(kb_factory):
        kb = kb_factory(Path(docs_dir))
    else:
        kb = kb_factory()
        kb.ingest([Path(docs_dir)])
    depth = max(k, 10)
    rankings, latencies = [], []
    for query in _rows(queries):
        started = time.perf_counter()
        hits = kb.search(query["query"], k=depth)
        latencies.append((time.perf_counter() - started) * 1000)
        answers = list(query.get("answer_contains", []))
        ranked = [
            GOLD if is_answer_hit(h, query["doc"], answers) else f"\0miss{n}" for n, h in enumerate(hits)
        ]
        rankings.append((ranked, {GOLD}))
    return _summary(rankings, latencies)

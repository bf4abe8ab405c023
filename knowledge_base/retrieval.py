"""Hybrid retrieval: dense (Chroma) + BM25 fused by weighted reciprocal rank, then metadata filters and
permissions, current-over-stale ordering and rating boosts.

Pure helpers (``rrf_fuse``, ``title_stem``, ``version_status``, ``document_allowed``) are unit-tested;
``Retriever`` wires them to the indexes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from knowledge_base.documents import DocumentInfo

RRF_K = 60
STALE_FACTOR = 0.5  # a superseded version keeps half its score: found, but below the current one


@dataclass(frozen=True)
class RetrievalWeights:
    dense: float = 1.0
    keyword: float = 0.6  # tuned on AFQMC/BQ dev: dense is the stronger signal on paraphrases
    candidates: int = 50  # per retriever, before fusion


def rrf_fuse(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], *, k0: int = RRF_K
) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: ``score(d) = Σ w_i / (k0 + rank_i(d))`` with 1-based ranks."""
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight <= 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k0 + rank)
    return fused


# ------------------------------------------------------------------ filters and permissions


def document_allowed(doc: DocumentInfo, visible_teams: set[str] | None) -> bool:
    """None = sees everything; otherwise ("all",) documents or a shared team/user token."""
    if visible_teams is None or "all" in doc.visibility:
        return True
    return bool(set(doc.visibility) & set(visible_teams))


def _as_set(value: object) -> set[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value}  # type: ignore[union-attr]


def matches_filters(doc: DocumentInfo, filters: Mapping[str, object] | None) -> bool:
    """``filters``: type/doc_type, industry, product (a value or a list), date_from, date_to (ISO dates)."""
    if not filters:
        return True
    types = _as_set(filters.get("doc_type") or filters.get("type"))
    if types and doc.doc_type not in types:
        return False
    for key in ("industry", "product"):
        wanted = _as_set(filters.get(key))
        if wanted and getattr(doc, key) not in wanted:
            return False
    date_from, date_to = filters.get("date_from"), filters.get("date_to")
    if date_from and (not doc.date or doc.date < str(date_from)):
        return False
    return not (date_to and (not doc.date or doc.date > str(date_to)))


# ------------------------------------------------------------------ versions

_YEARISH = re.compile(
    r"(?:19|20)\d{2}(?:[-/.年]\s*\d{1,2}(?:[-/.月]\s*\d{1,2}日?)?)?\s*年?(?:度|版|修订版?)?"
    r"|v\d+(?:\.\d+)*|第[一二三四五六七八九十\d]+版|[（(]?(?:最新|新|旧|修订|更新)版[)）]?"
)
_NOISE = re.compile(r"[\s\-_—·・,，、.。:：()（）\[\]【】《》\"“”'‘’]+")


def title_stem(title: str) -> str:
    """The title without years, dates and version markers: versions of one policy share a stem."""
    return _NOISE.sub("", _YEARISH.sub("", title.lower()))


def version_status(docs: Iterable[DocumentInfo]) -> dict[str, str]:
    """path of each superseded document -> path of its newest version.

    Versions are documents with the same title stem (and type), or linked by ``supersedes`` (a path or
    title). The newest date wins; an undated document never supersedes a dated one.
    """
    docs = list(docs)
    by_path = {d.path: d for d in docs}
    by_title = {d.title: d for d in docs}
    parent = {d.path: d.path for d in docs}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    stems: dict[tuple[str, str], str] = {}
    for d in docs:
        stem = title_stem(d.title)
        if len(stem) >= 2:
            key = (stem, d.doc_type)
            if key in stems:
                union(d.path, stems[key])
            else:
                stems[key] = d.path
        if d.supersedes:
            old = by_path.get(d.supersedes) or by_title.get(d.supersedes)
            if old is not None:
                union(d.path, old.path)
    groups: dict[str, list[DocumentInfo]] = {}
    for d in docs:
        groups.setdefault(find(d.path), []).append(d)
    stale: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        superseded = {by_path[d.supersedes].path for d in members if d.supersedes in by_path}
        superseded |= {by_title[d.supersedes].path for d in members if d.supersedes in by_title}
        newest = max(members, key=lambda d: (d.path not in superseded, d.date or "", d.path))
        for d in members:
            if d.path != newest.path and (d.path in superseded or (d.date or "") < (newest.date or "")):
                stale[d.path] = newest.path
    return stale


def years_named(query: str) -> set[str]:
    return set(re.findall(r"(?<!\d)((?:19|20)\d{2})(?!\d)", query))


def document_years(doc: DocumentInfo) -> set[str]:
    years = set(re.findall(r"(?<!\d)((?:19|20)\d{2})(?!\d)", doc.title))
    if doc.date:
        years.add(doc.date[:4])
    return years

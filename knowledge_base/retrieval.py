"""Hybrid retrieval: dense (Chroma) + BM25 fused by normalised score (z-scores over each retriever's
candidates; reciprocal-rank fusion is kept as an option), then metadata filters and permissions,
current-over-stale ordering and rating boosts.

Pure helpers (``score_fuse``, ``rrf_fuse``, ``title_stem``, ``version_status``, ``document_allowed``)
are unit-tested; ``KnowledgeBase`` and ``PassageIndex`` wire them to the indexes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from knowledge_base.documents import DocumentInfo

RRF_K = 60
STALE_FACTOR = 0.5  # a superseded version keeps half its score: found, but below the current one


Z_OFFSET = 3.0  # a candidate's fused share is max(0, z + 3): a list's average candidate counts 3, and
# an item missing from a list gets 0 there, as if it sat three deviations below that list's mean
FUSIONS = ("zscore", "rrf")


MODES = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class RetrievalWeights:
    dense: float = 1.0
    keyword: float = 0.5  # dense is the stronger signal on paraphrases (AFQMC/BQ dev)
    candidates: int = 100  # per retriever, before fusion (also the sample the z-scores are taken over)
    fusion: str = "zscore"  # or "rrf"
    hubness: float = 0.5  # dense score = cos(q, p) - hubness * mean·p; CSLS's 1/2 (vector_index)

    @classmethod
    def for_mode(cls, mode: str) -> RetrievalWeights:
        """``hybrid`` (the default), ``dense`` only or ``bm25`` only: for ablations in evals."""
        if mode not in MODES:
            raise ValueError(f"未知检索模式 {mode!r}；可选：{'、'.join(MODES)}")
        return cls(dense=0.0 if mode == "bm25" else 1.0, keyword=0.0 if mode == "dense" else cls.keyword)


def score_fuse(
    results: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float], *, offset: float = Z_OFFSET
) -> dict[str, float]:
    """Normalised score fusion: ``score(d) = Σ w_i · max(0, z_i(d) + offset)``, where ``z_i`` standardises
    retriever ``i``'s scores over its own candidate list (mean 0, deviation 1).

    Unlike rank fusion this keeps *how much* better a candidate is: a near-duplicate of the query that
    both retrievers score far above the rest stays on top, and a retriever whose scores are all alike (no
    clear match) contributes little spread. A one-item list counts ``offset`` for its item."""
    fused: dict[str, float] = {}
    for result, weight in zip(results, weights, strict=True):
        if weight <= 0 or not result:
            continue
        scores = [float(s) for _, s in result]
        mu = sum(scores) / len(scores)
        sd = (sum((s - mu) ** 2 for s in scores) / len(scores)) ** 0.5
        for (item, _), s in zip(result, scores, strict=True):
            z = (s - mu) / sd if sd > 1e-12 else 0.0
            fused[item] = fused.get(item, 0.0) + weight * max(0.0, z + offset)
    return fused


def fuse(
    results: Sequence[Sequence[tuple[str, float]]],
    weights: RetrievalWeights | Sequence[float],
    method: str = "",
) -> dict[str, float]:
    """Fuse ranked ``(id, score)`` lists with ``weights`` (a ``RetrievalWeights`` fixes weights and method)."""
    if isinstance(weights, RetrievalWeights):
        method = method or weights.fusion
        weights = [weights.dense, weights.keyword]
    if (method or "zscore") == "rrf":
        return rrf_fuse([[item for item, _ in r] for r in results], weights)
    if method != "zscore":
        raise ValueError(f"未知融合方式 {method!r}；可选：{'、'.join(FUSIONS)}")
    return score_fuse(results, weights)


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

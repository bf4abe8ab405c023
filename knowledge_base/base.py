"""The knowledge-base facade the application uses: built from plain values, nothing read from the
environment.

    kb = KnowledgeBase(engine=engine, embedder=load_embedder(None, models_dir=home / "models"),
                       chroma_path=home / "chroma")
    kb.ingest(["docs/"])
    hits = kb.search("客户嫌贵咋回", k=5, visible_teams={"team_a"})
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sqlalchemy.engine import Engine

from knowledge_base.catalog import Catalog
from knowledge_base.chunking import DEFAULT_MAX_CHARS
from knowledge_base.documents import Chunk, DocumentInfo, Hit
from knowledge_base.embedder import Embedder
from knowledge_base.ingest import Ingestor, IngestReport, Progress
from knowledge_base.keyword_index import ChineseTokenizer, KeywordIndex, SyncPoint, join_tokens
from knowledge_base.retrieval import (
    STALE_FACTOR,
    RetrievalWeights,
    document_allowed,
    document_years,
    fuse,
    matches_filters,
    version_status,
    years_named,
)
from knowledge_base.vector_index import ChromaVectorIndex

logger = logging.getLogger(__name__)


class KnowledgeBase:
    def __init__(
        self,
        *,
        engine: Engine,
        embedder: Embedder,
        chroma_path: Path | None = None,
        chroma_url: str | None = None,
        collection: str = "kb",
        weights: RetrievalWeights | None = None,
        max_chunk_chars: int = DEFAULT_MAX_CHARS,
        keyword_path: Path | None = None,
    ):
        """``keyword_path``: the folder where the BM25 index is saved, so that a restarted process (or
        another one) loads it and indexes only what changed since; defaults to
        ``chroma_path/bm25/<collection>``. With only ``chroma_url`` and no ``keyword_path`` the index lives
        in memory and each process indexes the whole catalogue on its first search."""
        self.engine = engine
        self.embedder = embedder
        self.weights = weights or RetrievalWeights()
        self.catalog = Catalog(engine)
        self.vectors = ChromaVectorIndex(
            path=chroma_path,
            url=chroma_url,
            collection=collection,
            embedder_name=embedder.name,
            dim=embedder.dim,
        )
        self.tokenizer = ChineseTokenizer(self.catalog.terms())
        self.keywords = KeywordIndex(self.tokenizer)
        if keyword_path is None and chroma_path is not None and not chroma_url:
            keyword_path = Path(chroma_path) / "bm25" / collection
        self.keyword_path = Path(keyword_path) if keyword_path is not None else None
        self._ingestor = Ingestor(
            catalog=self.catalog,
            vectors=self.vectors,
            embedder=embedder,
            tokenizer=self.tokenizer,
            max_chunk_chars=max_chunk_chars,
        )
        self._lock = threading.RLock()
        self._marker: tuple | None = None
        self._docs: dict[str, DocumentInfo] = {}
        self._stale: dict[str, str] = {}
        self._current_of: dict[str, set[str]] = {}
        self._boosts: dict[str, float] = {}
        self._terms_version = 0  # bumped when chunks are re-cut without a document change

    # ------------------------------------------------------------------ writing
    def ingest(
        self, paths: Sequence[Path | str] | Path | str, progress: Progress | None = None
    ) -> IngestReport:
        if isinstance(paths, str | Path):
            paths = [paths]
        with self._lock:
            report = self._ingestor.ingest(list(paths), progress)
            self._marker = None  # rebuild the keyword index and version map on the next search
        return report

    def add_passages(self, passages: Iterable[Mapping[str, object]], *, batch_size: int = 512) -> int:
        """Index bare passages (``{"id","text","title"?}``) as one-chunk documents whose path is the id.

        Used by ``copilot eval retrieval --passages``: the passages go through the same catalogue, vector
        store, BM25 and fusion as ingested documents.
        """
        from knowledge_base.ingest import add_passages

        with self._lock:
            count = add_passages(self._ingestor, passages, batch_size=batch_size)
            self._marker = None
        return count

    def add_terms(self, terms: Iterable[str]) -> int:
        """Teach the keyword tokenizer product, competitor and customer names; re-cuts affected chunks."""
        from knowledge_base.ingest import embedding_text

        def recut(terms: list[str], chunks: list[Chunk], docs: dict[str, DocumentInfo]) -> dict[str, str]:
            self.tokenizer.add_terms(terms)
            return {
                c.id: join_tokens(self.tokenizer.tokens(embedding_text(docs[c.doc_path], c)))
                for c in chunks
                if c.doc_path in docs
            }

        with self._lock:
            new = self.catalog.add_terms(terms, recut)
            if not new:
                return 0
            self.tokenizer.add_terms(new)  # also when no chunk had a new term (``recut`` not called)
            self._terms_version += 1
            self._marker = None
            return len(new)

    def set_boosts(self, boosts: Mapping[str, float]) -> None:
        """Rating hook: ``{chunk_id: b}`` multiplies a chunk's fused score by ``1 + b`` (b ≥ -0.9)."""
        with self._lock:
            self._boosts = {cid: max(-0.9, float(b)) for cid, b in boosts.items()}

    # ------------------------------------------------------------------ reading
    def get_chunk(self, chunk_id: str) -> tuple[Chunk, DocumentInfo] | None:
        chunk = self.catalog.get_chunk(chunk_id)
        if chunk is None:
            return None
        doc = self.catalog.document(chunk.doc_path)
        return (chunk, doc) if doc else None

    def document_text(self, path: str) -> str | None:
        return self.catalog.document_text(path)

    def documents(self) -> list[DocumentInfo]:
        return self.catalog.documents()

    def is_stale(self, path: str) -> bool:
        self._refresh()
        return path in self._stale

    def stats(self) -> dict[str, object]:
        counts = self.catalog.counts()
        return {
            **counts,
            "vectors": self.vectors.count(),
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
        }

    # ------------------------------------------------------------------ search
    def _catalog_marker(self) -> tuple:
        return (self.catalog.version(), self._terms_version)

    def _refresh(self) -> None:
        """Load documents, versions and the keyword index from the catalogue when it changed (also when
        another process ingested)."""
        marker = self._catalog_marker()
        if marker == self._marker:
            return
        with self._lock:
            docs = {d.path: d for d in self.catalog.documents()}
            known_terms = self.catalog.terms()
            if known_terms:
                self.tokenizer.add_terms(known_terms)
            self._load_keywords(marker)
            self.vectors.invalidate()
            self._docs = docs
            self._stale = version_status(docs.values())
            current_of: dict[str, set[str]] = {}
            for old, new in self._stale.items():
                current_of.setdefault(new, set()).add(old)
            self._current_of = current_of
            self._marker = marker

    def _load_keywords(self, marker: tuple) -> None:
        """Bring the BM25 index up to the catalogue: load the saved index (this process's first search),
        then index only what changed since the state it reflects (documents whose revision differs,
        removed documents, chunks re-cut for new dictionary terms), and save it again."""
        instance, version = self.catalog.instance(), marker[0]
        keywords = self.keywords
        if keywords.synced is None or keywords.synced.instance != instance:
            loaded = self.keyword_path is not None and keywords.load(self.keyword_path, instance)
            if not loaded:
                keywords.build([])
                keywords.synced = SyncPoint(instance, -1)
        synced = keywords.synced
        if synced is not None and synced.version == version:
            return
        terms = frozenset(self.catalog.terms())
        indexed = keywords.doc_hashes()
        if not indexed:  # nothing to keep: stream every chunk
            keywords.update(self.catalog.iter_chunk_tokens(), synced=SyncPoint(instance, version, terms))
        else:
            current = self.catalog.revisions()
            changed = {path for path, revision in current.items() if indexed.get(path) != revision}
            gone = indexed.keys() - current.keys()
            new_terms = terms - (synced.terms if synced is not None else frozenset())
            recut = {cid for cid, _ in self.catalog.chunks_containing(new_terms)} if new_terms else set()
            keywords.update(
                self.catalog.chunk_tokens(paths=changed, ids=recut),
                remove_docs=changed | gone,
                remove_ids=recut,
                synced=SyncPoint(instance, version, terms),
            )
        if self.keyword_path is not None:
            try:
                keywords.save(self.keyword_path)
            except OSError as exc:  # a read-only folder costs a re-index next time, not the search
                logger.warning("could not save the BM25 index to %s: %s", self.keyword_path, exc)

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        visible_teams: set[str] | None = None,
        filters: Mapping[str, object] | None = None,
    ) -> list[Hit]:
        query = (query or "").strip()
        if not query or k <= 0:
            return []
        self._refresh()
        docs = self._docs
        if visible_teams is None and not filters:
            allowed, scope = docs.keys(), None  # the common fast path: no per-document checks
        else:
            allowed = {
                p
                for p, d in docs.items()
                if document_allowed(d, visible_teams) and matches_filters(d, filters)
            }
            scope = None if len(allowed) == len(docs) else allowed
        if not allowed:
            return []
        n = max(self.weights.candidates, 4 * k)
        dense: list[tuple[str, float]] = []
        if self.weights.dense > 0:
            vector = self.embedder.embed_queries([query])[0]
            dense = self.vectors.search(vector, n, allowed_docs=scope, hubness=self.weights.hubness)
        sparse = self.keywords.search(query, n, allowed_docs=scope) if self.weights.keyword > 0 else []
        fused = fuse([dense, sparse], self.weights)
        for cid, boost in self._boosts.items():
            if cid in fused:
                fused[cid] *= 1.0 + boost
        shortlist = sorted(fused, key=fused.__getitem__, reverse=True)[: max(3 * k, k + 10)]
        chunks = self.catalog.get_chunks(shortlist)
        years = years_named(query)
        scored: list[tuple[float, Chunk, DocumentInfo]] = []
        for cid in shortlist:
            chunk = chunks.get(cid)
            doc = docs.get(chunk.doc_path) if chunk else None
            if chunk is None or doc is None or doc.path not in allowed:  # never leak past the ACL
                continue
            scored.append((fused[cid] * self._version_factor(doc, years), chunk, doc))
        scored.sort(key=lambda item: item[0], reverse=True)
        return [
            Hit(
                chunk=chunk,
                document=doc,
                score=round(score, 6),
                matched_terms=self.keywords.matched_terms(query, chunk.text),  # query cut once, cached
                stale=doc.path in self._stale,
            )
            for score, chunk, doc in scored[:k]
        ]

    def _version_factor(self, doc: DocumentInfo, years: set[str]) -> float:
        """Superseded versions rank below the current one, unless the query names their year."""
        if doc.path in self._stale:
            asked_old = years & document_years(doc)
            current = self._docs.get(self._stale[doc.path])
            asked_new = current is not None and years & document_years(current)
            return 1.0 if asked_old and not asked_new else STALE_FACTOR
        if years and doc.path in self._current_of and not (years & document_years(doc)):
            olds = [self._docs[p] for p in self._current_of[doc.path] if p in self._docs]
            if any(years & document_years(old) for old in olds):
                return STALE_FACTOR
        return 1.0

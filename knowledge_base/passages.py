"""A throw-away hybrid index over bare passages (``{"id","text","title"?}``): the same dense + BM25 +
fusion machinery as the knowledge base, without documents. Used by ``copilot eval retrieval --passages``
and the benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from knowledge_base.embedder import Embedder
from knowledge_base.keyword_index import ChineseTokenizer, KeywordIndex, join_tokens
from knowledge_base.retrieval import MODES, RetrievalWeights, fuse
from knowledge_base.vector_index import ChromaVectorIndex


class PassageIndex:
    def __init__(
        self,
        embedder: Embedder,
        *,
        mode: str = "hybrid",
        weights: RetrievalWeights | None = None,
        chroma_path: Path | None = None,
        tokenizer: ChineseTokenizer | None = None,
        batch_size: int = 512,
    ):
        if mode not in MODES:
            raise ValueError(f"未知检索模式 {mode!r}；可选：{'、'.join(MODES)}")
        self.embedder, self.mode = embedder, mode
        self.weights = weights or RetrievalWeights()
        self.batch_size = batch_size
        self.tokenizer = tokenizer or ChineseTokenizer()
        self.keywords = KeywordIndex(self.tokenizer)
        self.vectors = (
            ChromaVectorIndex(
                path=chroma_path,
                collection=f"passages-{uuid.uuid4().hex[:12]}",
                embedder_name=embedder.name,
                dim=embedder.dim,
            )
            if mode != "bm25"
            else None
        )

    def add_passages(self, passages: Iterable[Mapping[str, object]]) -> int:
        passages = list(passages)
        texts = [_passage_text(p) for p in passages]
        ids = [str(p["id"]) for p in passages]
        if self.vectors is not None:
            for start in range(0, len(texts), self.batch_size):
                end = start + self.batch_size
                vectors = self.embedder.embed_passages(texts[start:end])
                self.vectors.upsert(ids[start:end], vectors, [{"doc_path": i} for i in ids[start:end]])
        if self.mode != "dense":
            self.keywords.build(
                (i, i, "", join_tokens(self.tokenizer.tokens(t))) for i, t in zip(ids, texts, strict=True)
            )
        return len(ids)

    def search(self, query: str, k: int = 10) -> list[str]:
        n = max(self.weights.candidates, 4 * k)
        dense: list[tuple[str, float]] = []
        sparse: list[tuple[str, float]] = []
        if self.vectors is not None:
            vector = self.embedder.embed_queries([query])[0]
            dense = self.vectors.search(vector, n, hubness=self.weights.hubness)
        if self.mode != "dense":
            sparse = self.keywords.search(query, n)
        if self.mode == "dense":
            return [cid for cid, _ in dense[:k]]
        if self.mode == "bm25":
            return [cid for cid, _ in sparse[:k]]
        fused = fuse([dense, sparse], self.weights)
        return sorted(fused, key=fused.__getitem__, reverse=True)[:k]


def _passage_text(passage: Mapping[str, object]) -> str:
    title = str(passage.get("title") or "").strip()
    text = str(passage.get("text") or "")
    return f"{title}\n{text}" if title and title not in text else text

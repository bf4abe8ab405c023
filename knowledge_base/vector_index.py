"""Dense vectors in Chroma: an embedded ``PersistentClient`` by default, a Chroma server via ``HttpClient``.

We always pass our own vectors and ``embedding_function=None``: Chroma's default embedding function
downloads an English ONNX model on first use and fails offline.

Hubness correction. Sentence embeddings are anisotropic (e5's cosines sit between 0.7 and 0.95), so a few
"hub" passages that are close to everything crowd the top of many unrelated queries. ``search(...,
hubness=β)`` ranks by ``cos(q, p) − β · μ·p`` with ``μ`` the mean of the stored (unit) vectors: CSLS
(Conneau et al., 2018, "Word translation without parallel data") with the neighbourhood taken as the whole
collection, and β = 0.5 as in CSLS. Since ``(q − βμ)·p`` is that score, Chroma searches the whole
collection with the shifted query: exact, no re-ranking, nothing stored per vector, independent of the
order in which chunks were ingested.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

CENTROID_EXACT_MAX = 20_000  # up to this many vectors the mean is exact; above, a spread-out sample
CENTROID_SAMPLE_PAGES = 8
CENTROID_PAGE = 512


class VectorIndexError(RuntimeError):
    """The vector store is unreachable or was built with another embedding model (中文 message)."""


class ChromaVectorIndex:
    def __init__(
        self,
        *,
        path: Path | None = None,
        url: str | None = None,
        collection: str = "kb",
        embedder_name: str = "",
        dim: int = 0,
    ):
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        try:
            if url:
                parsed = urlparse(url)
                self._client = chromadb.HttpClient(
                    host=parsed.hostname or "127.0.0.1",
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=settings,
                )
            elif path is not None:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            else:
                self._client = chromadb.EphemeralClient(settings=settings)
        except Exception as exc:
            raise VectorIndexError(f"无法连接向量库（Chroma {url or path}）：{exc}") from exc
        # Chroma names need 3+ characters from [a-zA-Z0-9._-].
        name = collection if len(collection) >= 3 else f"{collection}_chunks"
        self._collection = self._client.get_or_create_collection(
            name,
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "embedder": embedder_name, "dim": dim},
        )
        built_with = (self._collection.metadata or {}).get("embedder")
        if embedder_name and built_with and built_with != embedder_name and self._collection.count():
            raise VectorIndexError(
                f"向量库集合 {name} 由模型 {built_with} 建立，当前模型为 {embedder_name}；"
                "请换一个集合名或清空后重新导入知识库"
            )
        self._batch = max(1, min(4000, self._client.get_max_batch_size()))
        self._centroid: np.ndarray | None = None  # mean stored vector, for the hubness correction

    def invalidate(self) -> None:
        """Forget cached statistics (another process may have written)."""
        self._centroid = None

    def centroid(self) -> np.ndarray | None:
        """Mean of the stored vectors (exact up to ``CENTROID_EXACT_MAX``, else from evenly spread pages);
        None when the collection is empty. Cached until the next write or ``invalidate()``."""
        if self._centroid is None:
            count = self._collection.count()
            if count == 0:
                return None
            if count <= CENTROID_EXACT_MAX:
                offsets, page = range(0, count, CENTROID_PAGE * 8), CENTROID_PAGE * 8
            else:
                step = count // CENTROID_SAMPLE_PAGES
                offsets, page = range(0, step * CENTROID_SAMPLE_PAGES, step), CENTROID_PAGE
            total, n = None, 0
            for offset in offsets:
                got = self._collection.get(include=["embeddings"], limit=page, offset=offset)
                rows = np.asarray(got["embeddings"], dtype=np.float64)
                if rows.size:
                    total = rows.sum(axis=0) if total is None else total + rows.sum(axis=0)
                    n += len(rows)
            if not n:
                return None
            self._centroid = (total / n).astype(np.float32)
        return self._centroid

    def count(self) -> int:
        return self._collection.count()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        self._centroid = None
        for start in range(0, len(ids), self._batch):
            end = start + self._batch
            self._collection.upsert(
                ids=list(ids[start:end]),
                embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                metadatas=[_clean_metadata(m) for m in metadatas[start:end]],
            )

    def delete(self, ids: Sequence[str]) -> None:
        self._centroid = None
        for start in range(0, len(ids), self._batch):
            self._collection.delete(ids=list(ids[start : start + self._batch]))

    def search(
        self,
        vector: np.ndarray,
        k: int,
        *,
        allowed_docs: set[str] | None = None,
        hubness: float = 0.0,
    ) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, score), restricted to chunks of ``allowed_docs`` (None = all). The score is
        the cosine similarity, minus ``hubness`` × its dot product with the mean stored vector (module doc)."""
        if k <= 0 or (allowed_docs is not None and not allowed_docs):
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        centroid = self.centroid() if hubness > 0 else None
        if centroid is not None:
            query = query - np.float32(hubness) * centroid
        # Chroma's cosine distance normalises the query: d = 1 - q·p / |q| for unit p, so the score
        # q·p = (1 - d) |q| keeps the hubness-corrected values comparable between queries.
        scale = float(np.linalg.norm(query)) or 1.0
        # No count() first: it costs as much as the query at 100k vectors, and Chroma returns fewer
        # results when fewer exist.
        where = None
        if allowed_docs is not None:
            docs = sorted(allowed_docs)
            where = {"doc_path": docs[0]} if len(docs) == 1 else {"doc_path": {"$in": docs}}
        result = self._collection.query(
            query_embeddings=query.reshape(1, -1),
            n_results=k,
            where=where,
            include=["distances"],
        )
        ids = result["ids"][0]
        distances = result["distances"][0]
        return [(cid, (1.0 - float(d)) * scale) for cid, d in zip(ids, distances, strict=True)]


def _clean_metadata(meta: dict) -> dict:
    """Chroma metadata values must be str/int/float/bool; drop Nones."""
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)} or {"_": 0}

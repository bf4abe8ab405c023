"""Dense vectors in Chroma: an embedded ``PersistentClient`` by default, a Chroma server via ``HttpClient``.

We always pass our own vectors and ``embedding_function=None``: Chroma's default embedding function
downloads an English ONNX model on first use and fails offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np


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

    def count(self) -> int:
        return self._collection.count()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        for start in range(0, len(ids), self._batch):
            end = start + self._batch
            self._collection.upsert(
                ids=list(ids[start:end]),
                embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                metadatas=[_clean_metadata(m) for m in metadatas[start:end]],
            )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), self._batch):
            self._collection.delete(ids=list(ids[start : start + self._batch]))

    def search(
        self, vector: np.ndarray, k: int, *, allowed_docs: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, cosine similarity), restricted to chunks of ``allowed_docs`` (None = all)."""
        if k <= 0 or (allowed_docs is not None and not allowed_docs):
            return []
        # No count() first: it costs as much as the query at 100k vectors, and Chroma returns fewer
        # results when fewer exist.
        where = None
        if allowed_docs is not None:
            docs = sorted(allowed_docs)
            where = {"doc_path": docs[0]} if len(docs) == 1 else {"doc_path": {"$in": docs}}
        result = self._collection.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=where,
            include=["distances"],
        )
        ids = result["ids"][0]
        distances = result["distances"][0]
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances, strict=True)]


def _clean_metadata(meta: dict) -> dict:
    """Chroma metadata values must be str/int/float/bool; drop Nones."""
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)} or {"_": 0}

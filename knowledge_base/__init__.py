"""The knowledge base: locator-preserving ingestion and Chinese-first hybrid retrieval.

Names are imported lazily so that ``import knowledge_base.documents`` stays cheap (no Chroma, no torch).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "KnowledgeBase": "knowledge_base.base",
    "Chunk": "knowledge_base.documents",
    "DocumentInfo": "knowledge_base.documents",
    "Hit": "knowledge_base.documents",
    "Locator": "knowledge_base.documents",
    "citation_label": "knowledge_base.documents",
    "Embedder": "knowledge_base.embedder",
    "ModelUnavailable": "knowledge_base.embedder",
    "load_embedder": "knowledge_base.embedder",
    "IngestReport": "knowledge_base.ingest",
    "LoaderError": "knowledge_base.loaders.base",
    "RetrievalWeights": "knowledge_base.retrieval",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'knowledge_base' has no attribute {name!r}")

"""Chroma vector index: the hubness-corrected search is exact (component: embedded Chroma, no model)."""

from __future__ import annotations

import numpy as np

from knowledge_base.vector_index import ChromaVectorIndex


def _unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    # anisotropic like sentence embeddings: a shared direction plus noise
    v = rng.standard_normal((n, dim)) + 3.0 * np.ones(dim) / np.sqrt(dim)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _index(tmp_path, vectors: np.ndarray) -> ChromaVectorIndex:
    index = ChromaVectorIndex(path=tmp_path / "chroma", collection="hub", embedder_name="test", dim=32)
    ids = [f"c{i}" for i in range(len(vectors))]
    index.upsert(ids, vectors, [{"doc_path": f"d{i % 7}"} for i in range(len(vectors))])
    return index


def test_hubness_search_ranks_by_cosine_minus_half_the_dot_with_the_mean_over_the_whole_collection(tmp_path):
    rng = np.random.default_rng(5)
    stored, queries = _unit(rng, 300), _unit(rng, 10)
    index = _index(tmp_path, stored)
    mean = stored.mean(axis=0)
    assert np.allclose(index.centroid(), mean, atol=1e-5)
    for query in queries:
        expected_scores = stored @ query - 0.5 * (stored @ mean)
        expected = [f"c{i}" for i in np.argsort(-expected_scores)[:10]]
        got = index.search(query, 10, hubness=0.5)
        assert [cid for cid, _ in got] == expected
        assert np.allclose([s for _, s in got], np.sort(expected_scores)[::-1][:10], atol=1e-4)
        plain = index.search(query, 10)
        assert [cid for cid, _ in plain] == [f"c{i}" for i in np.argsort(-(stored @ query))[:10]]


def test_the_mean_follows_writes_and_an_empty_collection_has_none(tmp_path):
    rng = np.random.default_rng(6)
    stored = _unit(rng, 20)
    index = ChromaVectorIndex(path=tmp_path / "chroma", collection="hub", embedder_name="test", dim=32)
    assert index.centroid() is None and index.search(stored[0], 3, hubness=0.5) == []
    index.upsert([f"c{i}" for i in range(20)], stored, [{"doc_path": "d"}] * 20)
    assert np.allclose(index.centroid(), stored.mean(axis=0), atol=1e-5)
    index.delete([f"c{i}" for i in range(10)])
    assert np.allclose(index.centroid(), stored[10:].mean(axis=0), atol=1e-5)
    assert {cid for cid, _ in index.search(stored[0], 20, hubness=0.5, allowed_docs={"d"})} == {
        f"c{i}" for i in range(10, 20)
    }

"""Metric arithmetic on tiny hand-computed cases."""

from __future__ import annotations

import math

import pytest

from evals.metrics import mean, mrr_at_k, ndcg_at_k, percentile, recall_at_k


def test_recall_counts_the_share_of_positives_found_within_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"c"}, 1) == 0.0
    assert recall_at_k(ranked, {"c"}, 3) == 1.0
    assert recall_at_k(ranked, {"a", "d", "z"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, set(), 4) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_hit_within_k():
    assert mrr_at_k(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], {"a"}) == 1.0
    assert mrr_at_k(["x"] * 10 + ["a"], {"a"}, 10) == 0.0


def test_ndcg_with_binary_gains():
    # one positive at rank 2: 1/log2(3)
    assert ndcg_at_k(["x", "a", "y"], {"a"}) == pytest.approx(1 / math.log2(3))
    # two positives at ranks 1 and 3, ideal ranks 1 and 2
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "a"], {"a", "b"}) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_percentile_interpolates_linearly_like_numpy():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 40.0
    assert percentile([], 95) == 0.0
    assert mean([1.0, 2.0]) == 1.5 and mean([]) == 0.0


# ---------------------------------------------------------------- the runners, over a tiny keyword matcher

import json  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from evals.retrieval import run_retrieval_docs, run_retrieval_passages  # noqa: E402

KEYS = ("n_queries", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "p50_ms", "p95_ms")


class _CharOverlapIndex:
    """A real (if tiny) system under test: ranks passages by shared characters."""

    def __init__(self, passages):
        self.passages = [(p["id"], set(p["text"])) for p in passages]

    def search(self, query, *, k):
        ranked = sorted(self.passages, key=lambda p: (-len(p[1] & set(query)), p[0]))
        return [pid for pid, _ in ranked[:k]]


def test_passage_mode_returns_exactly_the_contract_keys(tmp_path):
    passages = [
        {"id": "p1", "text": "花呗怎么还款"},
        {"id": "p2", "text": "借呗额度"},
        {"id": "p3", "text": "天气"},
    ]
    queries = [
        {"id": "q1", "query": "借呗的额度", "positives": ["p2"]},
        {"id": "q2", "query": "花呗还款", "positives": ["p1"]},
        {"id": "q3", "query": "余额宝", "positives": ["p3"]},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries), "utf-8")
    result = run_retrieval_passages(passages, path, index_factory=_CharOverlapIndex, k=10)
    assert tuple(result) == KEYS
    assert result["n_queries"] == 3
    assert result["recall@1"] == round(2 / 3, 4)  # q3 shares no character: p1 < p2 < p3 by id
    assert result["recall@10"] == 1.0
    assert result["mrr@10"] == round((1 + 1 + 1 / 3) / 3, 4)


@dataclass
class _Chunk:
    doc_path: str
    text: str


@dataclass
class _Hit:
    chunk: _Chunk


def test_docs_mode_counts_a_chunk_of_the_gold_doc_containing_every_answer_string(tmp_path):
    results = [
        _Hit(_Chunk("other.md", "折扣 八五折")),
        _Hit(_Chunk("政策/2026.txt", "年度合同最高 可给\n八五折，需审批")),
    ]

    class _FixedKB:
        def search(self, query, *, k):
            return results[:k]

    queries = [
        {"id": "a", "query": "折扣", "doc": "政策/2026.txt", "answer_contains": ["八五折", "最高可给"]},
        {"id": "b", "query": "折扣", "doc": "政策/2026.txt", "answer_contains": ["九折"]},
    ]
    result = run_retrieval_docs(tmp_path, queries, kb_factory=lambda _: _FixedKB(), k=10)
    assert tuple(result) == KEYS
    assert (result["recall@1"], result["recall@5"], result["mrr@10"]) == (0.0, 0.5, 0.25)

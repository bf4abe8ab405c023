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

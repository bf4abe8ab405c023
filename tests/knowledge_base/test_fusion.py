"""Unit tests of the pure fusion helpers, checked by hand."""

from __future__ import annotations

import pytest

from knowledge_base.retrieval import RetrievalWeights, fuse, rrf_fuse, score_fuse


def test_score_fusion_standardises_each_list_and_adds_the_offset():
    # dense scores 0.9, 0.8, 0.7: mean 0.8, deviation sqrt(2/3 * 0.01) = 0.08165
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    sparse = [("b", 10.0), ("d", 2.0)]  # mean 6, deviation 4: z = +1, -1
    fused = score_fuse([dense, sparse], [1.0, 0.5], offset=3.0)
    assert fused["a"] == pytest.approx(3.0 + 1.224745, abs=1e-5)
    assert fused["b"] == pytest.approx(3.0 + 0.5 * 4.0, abs=1e-9)
    assert fused["c"] == pytest.approx(3.0 - 1.224745, abs=1e-5)
    assert fused["d"] == pytest.approx(0.5 * 2.0, abs=1e-9)
    assert sorted(fused, key=fused.get, reverse=True) == ["b", "a", "c", "d"]


def test_score_fusion_never_goes_negative_and_handles_flat_or_empty_lists():
    fused = score_fuse([[("x", 1.0)] * 1 + [("y", 1.0)], []], [1.0, 1.0], offset=0.5)
    assert fused == {"x": 0.5, "y": 0.5}  # no spread: every item is average
    far = score_fuse([[("top", 100.0)] + [(f"n{i}", 0.0) for i in range(99)]], [1.0], offset=0.0)
    assert far["top"] > 9 and all(v == 0.0 for k, v in far.items() if k != "top")


def test_fuse_follows_the_configured_method_and_weights():
    dense, sparse = [("a", 0.9), ("b", 0.5)], [("b", 3.0), ("a", 1.0)]
    assert fuse([dense, sparse], RetrievalWeights(fusion="rrf")) == rrf_fuse(
        [["a", "b"], ["b", "a"]], [1.0, 0.5]
    )
    zero_keyword = fuse([dense, sparse], RetrievalWeights(keyword=0.0))
    assert zero_keyword == score_fuse([dense], [1.0])
    with pytest.raises(ValueError, match="未知融合方式"):
        fuse([dense], [1.0], "max")


def test_modes_switch_off_one_retriever_for_ablations():
    assert RetrievalWeights.for_mode("hybrid") == RetrievalWeights()
    assert RetrievalWeights.for_mode("dense").keyword == 0 and RetrievalWeights.for_mode("dense").dense == 1
    assert RetrievalWeights.for_mode("bm25").dense == 0 and RetrievalWeights.for_mode("bm25").keyword > 0
    with pytest.raises(ValueError, match="未知检索模式"):
        RetrievalWeights.for_mode("sparse")

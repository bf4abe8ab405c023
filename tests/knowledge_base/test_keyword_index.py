"""BM25 keyword index: scoring equals bm25s, and a saved index survives a restart."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge_base.keyword_index import ChineseTokenizer, KeywordIndex, join_tokens

TEXTS = {
    "p1": ("a.md", "客户嫌贵的时候，先讲总拥有成本，再给分期方案。"),
    "p2": ("a.md", "交付周期通常是四周，私有化部署另加两周。"),
    "p3": ("b.md", "竞品报价便宜两成时，强调我们的服务响应和案例。"),
    "p4": ("c.md", "预算冻结的客户可以先做试点，明年再签年框。"),
}


@pytest.fixture(scope="module")
def tokenizer() -> ChineseTokenizer:
    return ChineseTokenizer()


def _entries(tokenizer):
    return [(cid, doc, join_tokens(tokenizer.tokens(text))) for cid, (doc, text) in TEXTS.items()]


def _built(tokenizer) -> KeywordIndex:
    index = KeywordIndex(tokenizer)
    index.build(_entries(tokenizer))
    return index


def test_scores_equal_bm25s_own_scoring(tokenizer):
    index = _built(tokenizer)
    for query in ("客户嫌贵咋回", "交付要多久", "预算没了", "竞品便宜"):
        tokens = [t for t in dict.fromkeys(tokenizer.tokens(query)) if t in index._model.vocab_dict]
        assert np.allclose(index.scores(query), index._model.get_scores(tokens), atol=1e-5)
    assert index.scores("zzzz") is None


def test_search_respects_allowed_documents(tokenizer):
    index = _built(tokenizer)
    assert index.search("客户预算", 4)[0][0] in {"p1", "p4"}
    assert {cid for cid, _ in index.search("客户预算", 4, allowed_docs={"a.md"})} <= {"p1", "p2"}


def test_a_saved_index_loads_in_a_new_process_with_identical_results(tokenizer, tmp_path):
    index = _built(tokenizer)
    index.save(tmp_path, "7-3")
    fresh = KeywordIndex(tokenizer)
    assert fresh.load(tmp_path, "7-3")
    assert len(fresh) == len(index) == 4
    for query in ("客户嫌贵咋回", "交付要多久", "竞品便宜"):
        assert fresh.search(query, 4) == index.search(query, 4)
        assert fresh.search(query, 4, allowed_docs={"b.md"}) == index.search(query, 4, allowed_docs={"b.md"})


def test_another_stamp_or_a_damaged_folder_is_not_loaded(tokenizer, tmp_path):
    index = _built(tokenizer)
    index.save(tmp_path, "7-3")
    fresh = KeywordIndex(tokenizer)
    assert not fresh.load(tmp_path, "7-4")  # the catalogue changed since
    assert not KeywordIndex(tokenizer, k1=1.5).load(tmp_path, "7-3")  # other BM25 parameters
    (tmp_path / "7-3" / "doc_codes.npy").write_bytes(b"broken")
    assert not fresh.load(tmp_path, "7-3") and len(fresh) == 0


def test_saving_a_newer_state_drops_the_older_one(tokenizer, tmp_path):
    index = _built(tokenizer)
    index.save(tmp_path, "7-3")
    index.save(tmp_path, "7-4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7-4"]


def test_an_empty_index_saves_and_loads(tokenizer, tmp_path):
    index = KeywordIndex(tokenizer)
    index.build([])
    index.save(tmp_path, "1-0")
    fresh = KeywordIndex(tokenizer)
    assert fresh.load(tmp_path, "1-0") and fresh.search("客户", 3) == []

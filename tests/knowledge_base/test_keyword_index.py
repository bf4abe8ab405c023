"""BM25 keyword index: scoring equals bm25s, incremental updates score exactly like a full rebuild, and a
saved index survives a restart."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_base import bm25_segments
from knowledge_base.keyword_index import MANIFEST, ChineseTokenizer, KeywordIndex, SyncPoint, join_tokens

TEXTS = {
    "p1": ("a.md", "客户嫌贵的时候，先讲总拥有成本，再给分期方案。"),
    "p2": ("a.md", "交付周期通常是四周，私有化部署另加两周。"),
    "p3": ("b.md", "竞品报价便宜两成时，强调我们的服务响应和案例。"),
    "p4": ("c.md", "预算冻结的客户可以先做试点，明年再签年框。"),
}
QUERIES = ("客户嫌贵咋回", "交付要多久", "预算没了", "竞品便宜", "私有化部署多久")


@pytest.fixture(scope="module")
def tokenizer() -> ChineseTokenizer:
    return ChineseTokenizer()


def _entries(tokenizer, texts=TEXTS, digest="h1"):
    return [(cid, doc, digest, join_tokens(tokenizer.tokens(text))) for cid, (doc, text) in texts.items()]


def _built(tokenizer, **kwargs) -> KeywordIndex:
    index = KeywordIndex(tokenizer, **kwargs)
    index.build(_entries(tokenizer))
    return index


def _ranked(index: KeywordIndex, query: str, **kwargs) -> list[tuple[str, float]]:
    """All matches, best first (ties by id: their order is arbitrary)."""
    found = [(cid, round(score, 4)) for cid, score in index.search(query, 50, **kwargs)]
    return sorted(found, key=lambda item: (-item[1], item[0]))


def test_scores_equal_bm25s_own_scoring(tokenizer):
    import bm25s

    index = _built(tokenizer)
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index([tokenizer.tokens(text) for _, text in TEXTS.values()], show_progress=False)
    for query in QUERIES:
        tokens = [t for t in dict.fromkeys(tokenizer.tokens(query)) if t in model.vocab_dict]
        assert np.allclose(index.scores(query), model.get_scores(tokens), atol=1e-5)
    assert index.scores("zzzz") is None


def test_search_respects_allowed_documents(tokenizer):
    index = _built(tokenizer)
    assert index.search("客户预算", 4)[0][0] in {"p1", "p4"}
    assert {cid for cid, _ in index.search("客户预算", 4, allowed_docs={"a.md"})} <= {"p1", "p2"}


def test_removing_and_adding_documents_scores_exactly_like_a_rebuild(tokenizer):
    index = _built(tokenizer, max_dead_share=1.0)  # dead chunks stay (no merge)
    changed = {"p2": ("a.md", "交付周期缩短为三周，私有化部署另加一周。"), "p1": TEXTS["p1"]}
    extra = {"p5": ("d.md", "医院客户关心数据安全和本地部署。")}
    index.update(
        _entries(tokenizer, changed, "h2") + _entries(tokenizer, extra), remove_docs={"a.md", "b.md"}
    )
    live = {"p4": TEXTS["p4"], **changed, **extra}
    fresh = KeywordIndex(tokenizer)
    fresh.build(_entries(tokenizer, live))
    assert len(index) == len(fresh) == 4 and index.segments == 2
    for query in QUERIES:
        assert _ranked(index, query) == _ranked(fresh, query)
    assert index.doc_hashes() == {"a.md": "h2", "c.md": "h1", "d.md": "h1"}
    assert "p3" not in {cid for cid, _ in index.search("竞品便宜两成", 10)}  # its document was removed


def test_a_re_cut_chunk_replaces_its_old_tokens(tokenizer):
    index = _built(tokenizer)
    index.update([("p3", "b.md", "h1", join_tokens(tokenizer.tokens("友商A报价")))], remove_ids={"p3"})
    assert [cid for cid, _ in index.search("友商A", 5)] == ["p3"]
    assert "p3" not in {cid for cid, _ in index.search("服务响应", 5)}


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove_doc", "remove_id"]), st.integers(0, 7), st.integers(0, 3)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=OPS, max_segments=st.integers(1, 4), max_dead_share=st.sampled_from([0.0, 0.3, 1.0]))
def test_any_sequence_of_updates_and_merges_equals_a_full_rebuild(
    tokenizer, ops, max_segments, max_dead_share
):
    rng = random.Random(len(ops))
    sentences = [text for _, text in TEXTS.values()] + ["医院客户关心数据安全。", "年框合同可以分期付款。"]
    index = KeywordIndex(tokenizer, max_segments=max_segments, max_dead_share=max_dead_share)
    index.build([])
    live: dict[str, tuple[str, str]] = {}  # chunk id -> (doc, text)
    for n, (op, doc_no, variant) in enumerate(ops):
        doc = f"d{doc_no}.md"
        if op == "add":  # (re)ingest a document: its old chunks go, new ones come
            chunks = {f"{doc}#{n}-{i}": (doc, rng.choice(sentences)) for i in range(variant + 1)}
            index.update(_entries(tokenizer, chunks, f"h{n}"), remove_docs={doc})
            live = {cid: v for cid, v in live.items() if v[0] != doc} | chunks
        elif op == "remove_doc":
            index.update(remove_docs={doc})
            live = {cid: v for cid, v in live.items() if v[0] != doc}
        elif live:  # re-cut one chunk in place
            cid = sorted(live)[variant % len(live)]
            live[cid] = (live[cid][0], rng.choice(sentences))
            index.update(_entries(tokenizer, {cid: live[cid]}, "h"), remove_ids={cid})
    fresh = KeywordIndex(tokenizer)
    fresh.build(_entries(tokenizer, live))
    assert len(index) == len(live)
    assert index.segments <= max(max_segments, 1) + 1
    for query in QUERIES:
        assert _ranked(index, query) == _ranked(fresh, query)


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.sampled_from("甲乙丙丁戊己"), max_size=6), max_size=12),
    data=st.data(),
)
def test_live_document_frequency_counts_each_token_in_live_chunks_only(docs, data):
    seg = bm25_segments.build_segment((f"c{i}", "d.md", "h", " ".join(t)) for i, t in enumerate(docs))
    live = np.asarray(data.draw(st.lists(st.booleans(), min_size=len(docs), max_size=len(docs))), dtype=bool)
    expected = [sum(1 for i, t in enumerate(docs) if live[i] and token in t) for token in seg.vocab]
    assert bm25_segments.live_df(seg, live).tolist() == expected
    assert bm25_segments.live_df(seg, None).tolist() == [sum(token in t for t in docs) for token in seg.vocab]


def test_only_the_added_chunks_are_read(tokenizer):
    index = _built(tokenizer)
    before = bm25_segments.tokens_read()
    index.update(_entries(tokenizer, {"p9": ("e.md", "新文档")}), remove_docs={"a.md"})
    assert bm25_segments.tokens_read() - before == 1


# ---------------------------------------------------------------------------- persistence


def _saved(tokenizer, folder, version=3, **kwargs) -> KeywordIndex:
    index = _built(tokenizer, **kwargs)
    index.synced = SyncPoint(7, version, frozenset({"友商A"}))
    assert index.save(folder)
    return index


def test_a_saved_index_loads_in_a_new_process_with_identical_results(tokenizer, tmp_path):
    index = _saved(tokenizer, tmp_path)
    index.update(_entries(tokenizer, {"p5": ("d.md", "医院客户关心数据安全。")}), remove_docs={"b.md"})
    index.synced = SyncPoint(7, 4, frozenset({"友商A"}))
    assert index.save(tmp_path)
    fresh = KeywordIndex(tokenizer)
    assert fresh.load(tmp_path, 7)
    assert fresh.synced == SyncPoint(7, 4, frozenset({"友商A"}))
    assert len(fresh) == len(index) == 4 and fresh.segments == index.segments == 2
    for query in QUERIES:
        assert fresh.search(query, 5) == index.search(query, 5)
        assert fresh.search(query, 5, allowed_docs={"c.md"}) == index.search(query, 5, allowed_docs={"c.md"})
    assert fresh.doc_hashes() == index.doc_hashes()


def test_saving_writes_only_the_new_segment(tokenizer, tmp_path):
    index = _saved(tokenizer, tmp_path)
    first = {p.name for p in tmp_path.iterdir() if p.name.startswith("seg-")}
    index.update(_entries(tokenizer, {"p5": ("d.md", "医院客户关心数据安全。")}))
    index.synced = SyncPoint(7, 4)
    index.save(tmp_path)
    now = {p.name for p in tmp_path.iterdir() if p.name.startswith("seg-")}
    assert first < now and len(now - first) == 1


def test_another_catalogue_or_a_damaged_folder_is_not_loaded(tokenizer, tmp_path):
    _saved(tokenizer, tmp_path)
    fresh = KeywordIndex(tokenizer)
    assert not fresh.load(tmp_path, 8)  # another database
    assert not KeywordIndex(tokenizer, k1=1.5).load(tmp_path, 7)  # other BM25 parameters
    segment = next(p for p in tmp_path.iterdir() if p.name.startswith("seg-"))
    (segment / "indices.npy").write_bytes(b"broken")
    assert not fresh.load(tmp_path, 7) and len(fresh) == 0 and fresh.synced is None


def test_an_older_state_never_replaces_a_newer_saved_one(tokenizer, tmp_path):
    _saved(tokenizer, tmp_path, version=5)
    older = _built(tokenizer)
    older.synced = SyncPoint(7, 4)
    assert not older.save(tmp_path)
    fresh = KeywordIndex(tokenizer)
    assert fresh.load(tmp_path, 7) and fresh.synced.version == 5


def test_segments_no_manifest_names_are_deleted_after_the_grace_period(tokenizer, tmp_path):
    index = _saved(tokenizer, tmp_path, max_dead_share=0.0, gc_grace_s=3600)
    (tmp_path / "12345-3").mkdir()  # an index of the previous format
    index.update(remove_docs={"a.md"})  # merged: the first segment is replaced
    index.synced = SyncPoint(7, 4)
    index.save(tmp_path)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("seg-")]) == 2  # still in its grace
    for entry in tmp_path.iterdir():
        os.utime(entry, (1, 1))
    index.gc_grace_s = 60
    index.synced = SyncPoint(7, 5)
    index.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and MANIFEST in names  # the manifest and the segment it names


def test_an_empty_index_saves_and_loads(tokenizer, tmp_path):
    index = KeywordIndex(tokenizer)
    index.build([])
    index.synced = SyncPoint(1, 0)
    index.save(tmp_path)
    fresh = KeywordIndex(tokenizer)
    assert fresh.load(tmp_path, 1) and fresh.search("客户", 3) == [] and len(fresh) == 0


def test_a_query_is_cut_again_when_the_dictionary_grew_but_no_chunk_changed():
    tokenizer = ChineseTokenizer()  # its own: terms are added
    index = KeywordIndex(tokenizer)
    index.build(_entries(tokenizer, {"p1": ("a.md", "公有云和私有云的报价不同。")}))
    before = index.query_tokens("飞鹰云报价")
    tokenizer.add_terms(["飞鹰云"])  # a new term no chunk contains: the update indexes nothing
    index.update(synced=SyncPoint(1, 2, frozenset({"飞鹰云"})))
    assert index.query_tokens("飞鹰云报价") == tokenizer.tokens("飞鹰云报价") != before


def test_a_segment_file_left_empty_by_a_crash_makes_the_index_unreadable_not_an_error(tokenizer, tmp_path):
    _saved(tokenizer, tmp_path)
    segment = next(p for p in tmp_path.iterdir() if p.name.startswith("seg-"))
    (segment / "tf.npy").write_bytes(b"")  # renamed into place, never flushed
    fresh = KeywordIndex(tokenizer)
    assert not fresh.load(tmp_path, 7) and fresh.synced is None


def test_an_index_that_failed_to_load_is_replaced_by_one_of_the_same_catalogue_state(tokenizer, tmp_path):
    _saved(tokenizer, tmp_path, version=3)
    segment = next(p for p in tmp_path.iterdir() if p.name.startswith("seg-"))
    (segment / "indices.npy").write_bytes(b"broken")
    rebuilt = KeywordIndex(tokenizer)
    assert not rebuilt.load(tmp_path, 7)
    rebuilt.build(_entries(tokenizer))  # what the caller does: index the catalogue, then save
    rebuilt.synced = SyncPoint(7, 3, frozenset({"友商A"}))
    assert rebuilt.save(tmp_path)  # else every new process re-indexes until the catalogue changes
    assert KeywordIndex(tokenizer).load(tmp_path, 7)


def test_segments_a_replaced_manifest_named_get_the_whole_grace_period(tokenizer, tmp_path):
    _saved(tokenizer, tmp_path, gc_grace_s=60)
    for entry in tmp_path.iterdir():
        os.utime(entry, (1, 1))  # that manifest has been the current one for long
    first = {p.name for p in tmp_path.iterdir() if p.name.startswith("seg-")}
    other = _built(tokenizer, gc_grace_s=60)  # another process, with segments of its own
    other.synced = SyncPoint(7, 4)
    assert other.save(tmp_path)
    # a process that read the old manifest a moment ago may still be loading its segments
    assert first <= {p.name for p in tmp_path.iterdir()}

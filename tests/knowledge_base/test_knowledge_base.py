"""The knowledge base end to end: real loaders, SQLite catalogue, embedded Chroma, the bundled model."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.models


def test_ingest_reports_added_then_unchanged_and_failures_in_chinese(make_kb, corpus):
    kb = make_kb()
    progress = []
    report = kb.ingest([corpus], progress=lambda done, total, path: progress.append((done, total, path)))
    assert report["added"] == 9 and report["updated"] == report["removed"] == report["unchanged"] == 0
    assert report["failed"] == [{"path": "坏文件.docx", "reason": report["failed"][0]["reason"]}]
    assert "Word 文件损坏" in report["failed"][0]["reason"]
    assert progress[-1][0] == progress[-1][1] == 10
    again = kb.ingest([corpus])
    assert (again["added"], again["updated"], again["unchanged"], again["removed"]) == (0, 0, 9, 0)
    paths = {d.path for d in kb.documents()}
    assert "话术/价格异议处理.md" in paths and "产品/产品白皮书.pdf" in paths


def test_changed_files_are_replaced_and_deleted_files_removed(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    before = kb.stats()["chunks"]
    target = corpus / "话术" / "价格异议处理.md"
    target.write_text(target.read_text("utf-8").replace("不要急于降价", "绝不主动降价"), "utf-8")
    (corpus / "竞品" / "竞品对比.html").unlink()
    report = kb.ingest([corpus])
    assert (report["added"], report["updated"], report["unchanged"], report["removed"]) == (0, 1, 7, 1)
    assert "绝不主动降价" in kb.document_text("话术/价格异议处理.md")
    assert kb.document_text("竞品/竞品对比.html") is None
    assert kb.stats()["chunks"] == kb.stats()["vectors"] == before - 1
    assert not [h for h in kb.search("友商A 私有化部署", k=10) if h.document.path == "竞品/竞品对比.html"]


def test_a_single_file_is_stored_under_its_file_name(make_kb, corpus):
    kb = make_kb()
    report = kb.ingest([corpus / "话术" / "常见问题.csv"])
    assert report["added"] == 1
    assert [d.path for d in kb.documents()] == ["常见问题.csv"]


def test_search_finds_colloquial_questions_with_citable_locators(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    hits = kb.search("客户嫌贵咋回", k=5)
    assert hits and any(h.document.path.startswith("话术/") for h in hits[:3])
    pdf_hits = [h for h in kb.search("交付周期多久", k=10) if h.document.path == "产品/产品白皮书.pdf"]
    assert pdf_hits and pdf_hits[0].chunk.locator.page == 2
    assert "第2页" in pdf_hits[0].label
    for query in ("预算没了咋办", "TCO怎么算", "医院案例", "折扣审批"):
        for hit in kb.search(query, k=10):
            text = kb.document_text(hit.document.path)
            assert text[hit.chunk.start : hit.chunk.end] == hit.chunk.text  # verbatim at its offsets
            assert kb.get_chunk(hit.chunk.id) == (hit.chunk, hit.document)


def test_a_rep_never_receives_another_teams_documents(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    query = "旗舰版底价是多少"
    assert any(h.document.path == "内部/团队B报价底线.md" for h in kb.search(query, k=10))
    assert any(
        h.document.path == "内部/团队B报价底线.md" for h in kb.search(query, k=10, visible_teams={"team_b"})
    )
    for teams in ({"team_a"}, set()):
        hits = kb.search(query, k=20, visible_teams=teams)
        assert hits and all("team_b" not in h.document.visibility for h in hits)


def test_metadata_filters_restrict_type_industry_and_dates(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    policy_hits = kb.search("折扣", k=10, filters={"type": "policy"})
    assert policy_hits and {h.document.doc_type for h in policy_hits} == {"policy"}
    assert {h.document.industry for h in kb.search("价格", k=10, filters={"industry": "制造"})} == {"制造"}
    dated = kb.search("折扣", k=10, filters={"date_from": "2026-01-01", "date_to": "2026-12-31"})
    assert dated and all(h.document.date and h.document.date.startswith("2026") for h in dated)


def test_current_policy_ranks_above_the_stale_one_unless_the_old_year_is_asked(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    hits = [h for h in kb.search("年度合同折扣最多能给多少", k=30) if h.document.doc_type == "policy"]
    assert hits[0].document.path == "政策/2026年折扣政策.txt" and not hits[0].stale
    old = [h for h in hits if h.document.path == "政策/2025年折扣政策.txt"]
    assert old and old[0].stale and old[0].label.endswith("（旧版）")
    asked_old = [h for h in kb.search("2025年的折扣政策是多少", k=10) if h.document.doc_type == "policy"]
    assert asked_old[0].document.path == "政策/2025年折扣政策.txt"


def test_rating_boosts_reorder_results(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    hits = kb.search("今年预算没了", k=5)
    last = hits[-1].chunk.id
    kb.set_boosts({last: 5.0})
    assert kb.search("今年预算没了", k=5)[0].chunk.id == last
    kb.set_boosts({hits[0].chunk.id: -0.9})
    assert kb.search("今年预算没了", k=5)[0].chunk.id != hits[0].chunk.id


def test_user_terms_become_keywords_and_a_fresh_process_reuses_the_index(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    assert kb.add_terms(["友商A", "本地机房部署"]) == 2
    hit = kb.search("友商A", k=3)[0]
    assert hit.document.path == "竞品/竞品对比.html" and "友商a" in hit.matched_terms
    reopened = make_kb()  # same SQLite file and Chroma folder, new objects: nothing re-embedded
    assert reopened.stats()["chunks"] == kb.stats()["chunks"] == reopened.stats()["vectors"]
    assert reopened.search("友商A", k=3)[0].chunk.id == hit.chunk.id
    assert reopened.ingest([corpus])["unchanged"] == 9


def test_passage_mode_eval_runs_through_the_knowledge_base(make_kb):
    from evals.retrieval import run_retrieval_passages

    passages = [
        {"id": "p1", "text": "花呗怎么还款"},
        {"id": "p2", "text": "借呗额度为什么没了"},
        {"id": "p3", "text": "如何开通余额宝"},
        {"id": "p4", "text": "交付周期是四周", "title": "交付说明"},
    ]
    queries = [
        {"id": "q1", "query": "花呗如何还钱", "positives": ["p1"]},
        {"id": "q2", "query": "借呗的额度没有了", "positives": ["p2"]},
        {"id": "q3", "query": "多久能交付", "positives": ["p4"]},
    ]
    result = run_retrieval_passages(passages, queries, index_factory=lambda: make_kb("passages"), k=10)
    assert result["n_queries"] == 3 and result["recall@10"] == 1.0 and result["recall@1"] >= 2 / 3


def test_a_search_sees_what_another_process_ingested_or_removed(make_kb, corpus, tmp_path):
    reader, writer = make_kb("shared"), make_kb("shared")  # two processes on one catalogue
    assert reader.search("预算没了", k=3) == []
    version = reader.catalog.version()
    writer.ingest([corpus])
    assert reader.catalog.version() > version
    hits = reader.search("今年预算没了", k=3)
    assert hits
    gone = hits[0].document.path
    (corpus / gone).unlink()
    writer.ingest([corpus])
    assert all(h.document.path != gone for h in reader.search("今年预算没了", k=10))


def _read_since(start: int) -> int:
    from knowledge_base import bm25_segments

    return bm25_segments.tokens_read() - start


def _tokens_read() -> int:
    from knowledge_base import bm25_segments

    return bm25_segments.tokens_read()


def _same_as_a_full_rebuild(kb, queries=("今年预算没了", "客户嫌贵咋回", "友商A 私有化部署", "折扣审批")):
    from knowledge_base.keyword_index import KeywordIndex

    fresh = KeywordIndex(kb.tokenizer)
    fresh.build(kb.catalog.iter_chunk_tokens())
    assert len(kb.keywords) == len(fresh) == kb.stats()["chunks"]
    for query in queries:
        got = sorted((cid, round(s, 4)) for cid, s in kb.keywords.search(query, 100))
        assert got == sorted((cid, round(s, 4)) for cid, s in fresh.search(query, 100))


def test_a_restarted_process_loads_the_saved_bm25_index_instead_of_rebuilding_it(make_kb, corpus):
    kb = make_kb()
    kb.ingest([corpus])
    expected = [h.chunk.id for h in kb.search("今年预算没了", k=5)]
    assert kb.keyword_path is not None and (kb.keyword_path / "manifest.json").is_file()
    start = _tokens_read()
    reopened = make_kb()  # a new process on the same database and folders
    assert [h.chunk.id for h in reopened.search("今年预算没了", k=5)] == expected
    assert _read_since(start) == 0
    _same_as_a_full_rebuild(reopened)


def test_re_ingesting_one_changed_document_cuts_and_indexes_only_its_chunks(make_kb, corpus, monkeypatch):
    from knowledge_base.keyword_index import ChineseTokenizer

    kb = make_kb()
    kb.ingest([corpus])
    kb.search("今年预算没了", k=3)
    cut: list[str] = []
    real_tokens = ChineseTokenizer.tokens
    monkeypatch.setattr(
        ChineseTokenizer, "tokens", lambda self, text: cut.append(text) or real_tokens(self, text)
    )
    start = _tokens_read()
    target = corpus / "话术" / "价格异议处理.md"
    target.write_text(target.read_text("utf-8").replace("不要急于降价", "绝不主动降价"), "utf-8")
    assert kb.ingest([corpus])["updated"] == 1
    hits = kb.search("绝不主动降价", k=3)
    assert hits[0].document.path == "话术/价格异议处理.md"
    changed = len(kb.catalog.chunk_ids("话术/价格异议处理.md"))
    assert _read_since(start) == changed  # the other documents' chunks were not indexed again...
    assert len(cut) == changed + 1 and cut[-1] == "绝不主动降价"  # ...nor cut again (+1: the query)
    assert kb.keywords.segments == 2
    _same_as_a_full_rebuild(kb)


def test_another_process_indexes_only_what_changed_since_its_saved_index(make_kb, corpus):
    writer = make_kb("shared")
    writer.ingest([corpus])
    writer.search("今年预算没了", k=3)
    reader = make_kb("shared")  # another process: loads the index the writer saved
    reader.search("今年预算没了", k=3)
    (corpus / "竞品" / "竞品对比.html").unlink()
    target = corpus / "话术" / "价格异议处理.md"
    target.write_text(target.read_text("utf-8").replace("不要急于降价", "绝不主动降价"), "utf-8")
    writer.ingest([corpus])
    start = _tokens_read()
    assert reader.search("绝不主动降价", k=1)[0].document.path == "话术/价格异议处理.md"
    assert _read_since(start) == len(reader.catalog.chunk_ids("话术/价格异议处理.md"))
    assert all(h.document.path != "竞品/竞品对比.html" for h in reader.search("友商A 私有化部署", k=10))
    _same_as_a_full_rebuild(reader)
    start = _tokens_read()
    writer.add_terms(["分期付款", "总拥有成本"])  # re-cuts the chunks naming them, in one transaction
    reader.search("分期付款", k=3)
    assert 0 < _read_since(start) == len(reader.catalog.chunks_containing(["分期付款", "总拥有成本"]))
    _same_as_a_full_rebuild(reader, ("分期付款", "总拥有成本", "今年预算没了"))
    start = _tokens_read()
    assert make_kb("shared").search("分期付款", k=1) and _read_since(start) == 0  # ...and saved for the next


def test_without_a_chroma_folder_the_bm25_index_is_saved_where_keyword_path_says(tmp_path, embedder, corpus):
    # as with a Chroma server (COPILOT_CHROMA_URL): services pass COPILOT_HOME/bm25/kb
    import uuid

    import sqlalchemy as sa

    from knowledge_base.base import KnowledgeBase

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'kb.db'}")
    collection = f"kb-{uuid.uuid4().hex[:8]}"

    def open_kb() -> KnowledgeBase:
        return KnowledgeBase(
            engine=engine, embedder=embedder, collection=collection, keyword_path=tmp_path / "bm25"
        )

    kb = open_kb()
    kb.ingest([corpus])
    expected = [h.chunk.id for h in kb.search("今年预算没了", k=5)]
    assert (tmp_path / "bm25" / "manifest.json").is_file()
    start = _tokens_read()
    assert [h.chunk.id for h in open_kb().search("今年预算没了", k=5)] == expected
    assert _read_since(start) == 0
    engine.dispose()


def test_a_passage_added_again_with_the_same_text_and_a_new_title_is_indexed_again(make_kb):
    kb = make_kb()
    text = "交付周期通常是四周，私有化部署另加两周。"
    kb.add_passages(
        [{"id": "q1", "text": text, "title": "交付周期"}, {"id": "q2", "text": "年框合同可以分期付款。"}]
    )
    kb.search("交付周期", k=1)
    kb.add_passages([{"id": "q1", "text": text, "title": "飞鹰云实施方案"}])  # same content hash
    assert [h.chunk.id for h in kb.search("飞鹰云实施方案", k=1)] == kb.catalog.chunk_ids("q1")
    _same_as_a_full_rebuild(kb, ("飞鹰云实施方案", "交付周期", "分期付款"))


def test_chunks_re_cut_for_a_new_term_keep_the_terms_another_process_added(make_kb, corpus):
    from knowledge_base.ingest import embedding_text
    from knowledge_base.keyword_index import ChineseTokenizer, join_tokens

    first = make_kb("shared")
    first.ingest([corpus])
    second = make_kb("shared")  # another process, started before the first one adds a term
    first.add_terms(["总拥有成本"])
    second.add_terms(["客户关注"])  # re-cuts chunks that also name the first process's term
    fresh = ChineseTokenizer(second.catalog.terms())
    affected = second.catalog.chunks_containing(["客户关注"])
    assert affected and any("总拥有成本" in text for _, text in affected)
    stored = {cid: tokens for cid, _, _, tokens in second.catalog.chunk_tokens(ids=[c for c, _ in affected])}
    for cid, chunk in second.catalog.get_chunks(stored).items():
        doc = second.catalog.document(chunk.doc_path)
        assert stored[cid] == join_tokens(fresh.tokens(embedding_text(doc, chunk)))

"""Chat with tool calling through an OpenAI-compatible endpoint (the stub on 127.0.0.1 plays the model):
the model looks things up with search_kb / get_customer / list_suggestions and may only *propose* a CRM
change; the code resolves its citations against what the tools returned in this turn, and nothing is
written until the rep confirms."""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import func, select

from connectors.crm import local_schema as crm_t
from copilot.agent.answer import unsafe_reason
from copilot.agent.offline_planner import discount_mentions
from copilot.container import build_container
from copilot.features.chat.tool_loop import StreamFilter, drop_write_claims, history_messages
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from copilot.storage import tables as t
from tests.copilot.conftest import DATA, token_for
from tests.fakes.openai_stub import Fault, OpenAIStub

AS_OF = "2026-11-20"  # a Friday: 下周三 is 2026-11-25


@pytest.fixture
def stub():
    with OpenAIStub.running() as s:
        yield s


@pytest.fixture
def services(stub, monkeypatch, embedder, backend_database):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("COPILOT_LLM_TIMEOUT_S", "2")
    built = build_container(Settings())
    built.provide("embedder", embedder)
    CRMImporter(built.engine, built.local_crm, built.users).import_file(DATA / "crm_small.json")
    built.kb.ingest([DATA / "kb"])
    yield built
    built.engine.dispose()


def _chat(client, services, message, conversation_id=None, user="rep_a"):
    body = {"message": message, "as_of": AS_OF}
    if conversation_id:
        body["conversation_id"] = conversation_id
    r = client.post("/api/chat", json=body, headers=token_for(services, user))
    assert r.status_code == 200, r.text
    return r.json()


def _tool_results(request) -> list[dict]:
    return [json.loads(m["content"]) for m in request.messages if m.get("role") == "tool"]


def _evidence(request) -> dict[str, str]:
    out = {}
    for result in _tool_results(request):
        for item in result.get("results", []) + result.get("records", []):
            out[item["evidence_id"]] = item["text"]
    return out


def _call(name, **arguments):
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _writes(services):
    with services.engine.connect() as conn:
        tasks = conn.execute(select(func.count()).select_from(crm_t.tasks)).scalar_one()
        outbox = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    return tasks, outbox


def _metric(client, name, **labels) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _verifiable(services, citations):
    for c in citations:
        assert c["kind"] == "kb"
        chunk, _doc = services.kb.get_chunk(c["ref"])
        assert c["quote"] in chunk.text, c


# -- knowledge, cited by evidence id ------------------------------------------------------------------


def test_the_model_searches_the_kb_and_only_evidence_returned_this_turn_is_cited(services, stub, client_for):
    def model(request):
        evidence = _evidence(request)
        if not evidence:
            assert request.body["tools"] and {f["function"]["name"] for f in request.body["tools"]} == {
                "search_kb", "get_customer", "list_suggestions", "propose_change"}  # fmt: skip
            return _call("search_kb", query="客户嫌贵 价格异议")
        first = next(iter(evidence))
        return f"先认同客户的顾虑，再帮他算总拥有成本 [{first}]。必要时请主管出面 [E99]。"

    stub.handler = model
    client = client_for(services)
    body = _chat(client, services, "客户嫌贵怎么回？")

    assert body["mode"] == "llm" and body["intent"] == "ask_knowledge"
    assert body["citations"] and "[1]" in body["answer"] and "E99" not in body["answer"]
    _verifiable(services, body["citations"])
    assert len(stub.requests) == 2
    assert _metric(client, "copilot_citations_dropped_total") >= 1  # E99 was never returned
    assert _metric(client, "copilot_llm_answers_total", path="chat_tools", outcome="accepted") == 1


def test_fabricated_quotes_are_dropped_and_the_shown_quote_is_verbatim(services, stub, client_for):
    def model(request):
        evidence = _evidence(request)
        if not evidence:
            return _call("search_kb", query="价格异议")
        eid, text = next(iter(evidence.items()))
        real = text.strip().split("。")[0]
        return {"content": {"answer": f"先认同，再讲总账 [{eid}]。", "citations": [
            {"evidence_id": eid, "quote": "我们承诺五折优惠，今天签约再送一年维保"},
            {"evidence_id": eid, "quote": real},
            {"evidence_id": "E42", "quote": real}]}}  # fmt: skip

    stub.handler = model
    body = _chat(client_for(services), services, "客户嫌贵怎么回？")

    assert body["mode"] == "llm"
    assert len(body["citations"]) == 1 and "五折" not in body["citations"][0]["quote"]
    _verifiable(services, body["citations"])


# -- customers the rep may not see --------------------------------------------------------------------


def test_another_teams_and_made_up_customer_ids_get_the_same_result_that_names_nobody(
    services, stub, client_for
):
    def model(request):
        results = _tool_results(request)
        if not results:
            return {"tool_calls": [
                {"name": "get_customer", "arguments": {"customer": "c_b1"}},  # another team's customer
                {"name": "get_customer", "arguments": {"customer": "c_made_up"}},
                {"name": "list_suggestions", "arguments": {"customer": "c_b1"}},
                {"name": "propose_change", "arguments": {"op": "create_task", "customer": "c_b1", "title": "回访"}},
            ]}  # fmt: skip
        return "没有找到这位客户的记录。"

    stub.handler = model
    client = client_for(services)
    before = _writes(services)
    body = _chat(client, services, "南山零售那种客户嫌贵怎么回？")  # the model makes the ids up itself

    results = [m["content"] for m in stub.requests[-1].messages if m.get("role") == "tool"]
    assert len(results) == 4 and len(set(results)) == 1  # identical: unknown == not visible
    assert "南山" not in "".join(results) and "c_b1" not in "".join(results)
    assert body["customer_id"] is None and body["proposed_change"] is None
    assert "南山" not in json.dumps(body, ensure_ascii=False)
    assert _writes(services) == before


def test_search_kb_runs_as_the_rep_and_never_returns_another_teams_documents(services, stub, client_for):
    seen: dict[str, list[str]] = {}

    def model(request):
        results = _tool_results(request)
        if not results:
            return _call("search_kb", query="海拓物联的传感器寿命怎么对比")
        seen[request.messages[1]["content"]] = [r["label"] for r in results[0]["results"]]
        eid = results[0]["results"][0]["evidence_id"]
        return f"对比时先讲寿命数据 [{eid}]。"

    stub.handler = model
    client = client_for(services)
    _chat(client, services, "海拓物联的传感器寿命怎么对比？", user="rep_a")
    rep_a = next(iter(seen.values()))
    seen.clear()
    _chat(client, services, "海拓物联的传感器寿命怎么对比？", user="rep_b")
    rep_b = next(iter(seen.values()))
    assert not any("乙组竞品打法" in label for label in rep_a)
    assert any("乙组竞品打法" in label for label in rep_b)


# -- the model can only propose ----------------------------------------------------------------------


def test_a_model_claiming_it_wrote_to_the_crm_writes_nothing_until_the_rep_confirms_then_once(
    services, stub, client_for
):
    def model(request):
        results = _tool_results(request)
        if not results:
            return {"tool_calls": [
                {"name": "propose_change", "arguments": {"op": "create_task", "customer": "c_a1",
                                                         "title": "把三年TCO测算发给张总", "due": "下周三",
                                                         "status": "applied"}},  # ignored: always pending
                {"name": "apply_change", "arguments": {"id": "pc_x"}},  # no such tool: it cannot write
                {"name": "create_task", "arguments": {"customer": "c_a1", "title": "偷偷建的任务"}},
            ]}  # fmt: skip
        assert results[0]["status"] == "pending" and results[1]["error"] == "unknown_tool"
        return "已为您创建任务并写入CRM。截止时间是下周三。"

    stub.handler = model
    client = client_for(services)
    before = _writes(services)
    proposal = _chat(client, services, "帮我给华星建个任务：下周三前把三年TCO测算发给张总")

    change = proposal["proposed_change"]
    assert proposal["mode"] == "llm" and proposal["intent"] == "command"
    assert change["status"] == "pending" and change["customer_id"] == "c_a1"
    assert change["fields"]["due"] == "2026-11-25" and "TCO" in change["fields"]["title"]
    assert "已为您创建" not in proposal["answer"] and "回复「确认」" in proposal["answer"]
    assert _writes(services) == before  # 0 CRM effects, 0 outbox rows

    stub.handler = None  # 「确认」 never reaches the model
    cid = proposal["conversation_id"]
    done = _chat(client, services, "确认", cid)
    again = _chat(client, services, "确认", cid)
    assert done["proposed_change"]["status"] == "applied" and again["proposed_change"] is None
    assert _writes(services) == (before[0] + 1, before[1] + 1)  # exactly one write


def test_a_proposal_for_a_won_stage_is_refused_by_the_tool(services, stub, client_for):
    def model(request):
        results = _tool_results(request)
        if not results:
            return _call("propose_change", op="update_stage", customer="c_a1", stage="赢单")
        assert results[0]["error"] == "invalid"
        return "赢单须在 CRM 中依据合同手动变更，我不能提出。"

    stub.handler = model
    before = _writes(services)
    body = _chat(client_for(services), services, "把华星的商机改为赢单")
    assert body["proposed_change"] is None and _writes(services) == before


def test_suggestions_listed_by_the_model_are_shown_as_cards_and_confirm_1_applies_the_first_once(
    services, stub, client_for
):
    def model(request):
        results = _tool_results(request)
        if not results:
            return _call("list_suggestions", customer="华星")
        first = results[0]["suggestions"][0]
        return f"建议先做这一条：{first['title']} [{first['evidence'][0]['evidence_id']}]。"

    stub.handler = model
    client = client_for(services)
    body = _chat(client, services, "华星下一步怎么跟进？")

    assert body["mode"] == "llm" and body["customer_id"] == "c_a1" and body["suggestions"]
    quotes = {c["quote"] for sg in body["suggestions"] for c in sg["citations"]}
    assert body["citations"] and all(c["quote"] in quotes for c in body["citations"])  # the cards' own spans
    stub.handler = None
    before = _writes(services)
    first = _chat(client, services, "确认 1", body["conversation_id"])
    again = _chat(client, services, "确认 1", body["conversation_id"])
    assert first["answer"].startswith("已采纳") and "无需重复" in again["answer"]
    writes = 1 if body["suggestions"][0]["proposed_change"] else 0
    assert _writes(services)[1] == before[1] + writes  # applied once


# -- fallbacks, bounds --------------------------------------------------------------------------------


def test_an_endpoint_rejecting_tools_gets_the_single_shot_answer_and_the_fallback_is_counted(
    services, stub, client_for
):
    item = re.compile(r'<item id="(E\d+)"[^>]*>\n(.*?)\n</item>', re.S)

    def model(request):
        if "tools" in request.body:
            return Fault.http(400)
        eid = item.findall(request.last_user_message)[0][0]
        return {"content": {"answer": f"先认同客户，再算总账 [{eid}]。", "citations": [{"evidence_id": eid, "phrase": "总拥有成本"}]}}  # fmt: skip

    stub.handler = model
    client = client_for(services)
    first = _chat(client, services, "客户嫌贵怎么回？")
    second = _chat(client, services, "客户说竞品便宜怎么办？")

    assert first["mode"] == "llm" and second["mode"] == "llm" and first["citations"]
    assert sum("tools" in r.body for r in stub.requests) == 1  # not offered again once refused
    assert _metric(client, "copilot_llm_fallbacks_total", path="chat_tools", reason="tools_unsupported") == 1


def test_an_endpoint_that_ignores_tools_is_no_longer_offered_them_after_three_turns(
    services, stub, client_for
):
    item = re.compile(r'<item id="(E\d+)"[^>]*>')

    def model(request):  # never calls a tool; answers the single-shot JSON when evidence is in the prompt
        ids = item.findall(request.last_user_message or "")
        if not ids:
            return "客户嫌贵时，先认同再算账。"
        return {"content": {"answer": f"先认同客户，再算总账 [{ids[0]}]。", "citations": [ids[0]]}}

    stub.handler = model
    client = client_for(services)
    for _ in range(4):
        assert _chat(client, services, "客户嫌贵怎么回？")["mode"] == "llm"
    offered = ["tools" in r.body for r in stub.requests]
    assert offered == [True, False, True, False, True, False, False]
    assert _metric(client, "copilot_llm_fallbacks_total", path="chat_tools", reason="no_tool_calls") == 3


def test_a_model_that_only_calls_tools_is_stopped_after_the_round_limit_and_answered_offline(
    services, stub, client_for
):
    stub.handler = lambda request: _call("search_kb", query="价格")
    client = client_for(services)
    body = _chat(client, services, "客户嫌贵怎么回？")

    assert body["mode"] == "offline" and body["citations"] and body["note"]
    assert len(stub.requests) == 4  # COPILOT_LLM_TOOL_ROUNDS default
    assert _metric(client, "copilot_llm_fallbacks_total", path="chat_tools", reason="max_rounds") == 1


def test_the_whole_tool_loop_keeps_to_the_chat_timeout(services, stub, client_for):
    stub.enqueue(_call("search_kb", query="价格"), Fault.hang(10))
    client = client_for(services)
    started = time.monotonic()
    body = _chat(client, services, "客户嫌贵怎么回？")

    assert time.monotonic() - started < 4.5  # COPILOT_LLM_TIMEOUT_S=2, plus the offline answer
    assert body["mode"] == "offline" and body["citations"]
    assert _metric(client, "copilot_llm_fallbacks_total", path="chat_tools", reason="timeout") == 1


def test_the_prompt_carries_bounded_history_and_the_focus_customer(services, stub, client_for):
    def model(request):
        if not _tool_results(request):
            return _call("get_customer", customer="c_a1")
        eid = next(r["evidence_id"] for r in _tool_results(request)[0]["records"])
        return f"华星的档案见记录 [{eid}]。"

    stub.handler = model
    client = client_for(services)
    cid = None
    for message in [
        "华星最近怎么样？",
        "他们的联系人是谁？",
        "他们有哪些任务？",
        "那他们的采购呢？",
        "他们的商机呢？",
    ]:
        body = _chat(client, services, message, cid)
        cid = body["conversation_id"]
        assert body["customer_id"] == "c_a1" and body["citations"], body
        assert body["citations"][0]["kind"] == "crm"
    last = stub.requests[-2]  # the first round of the last turn
    roles = [m["role"] for m in last.messages]
    assert roles[0] == "system" and roles[-1] == "user" and len(roles) <= 2 + 6
    assert "华星电子（c_a1）" in last.messages[-1]["content"]


# -- pure pieces --------------------------------------------------------------------------------------


def test_sentences_claiming_a_crm_write_are_removed():
    assert drop_write_claims("已为您创建任务。截止下周三。") == "截止下周三。"
    assert drop_write_claims("我已经写入CRM了！请查收。") == "请查收。"
    assert drop_write_claims("这个任务已完成吗？可以回复确认。") == "这个任务已完成吗？可以回复确认。"


def test_streamed_text_is_whole_clauses_without_markers_write_claims_or_discounts():
    out: list[str] = []
    stream = StreamFilter(out.append)
    for piece in [
        "先认同",
        "客户 [",
        "E1",
        "]，再算",
        "总账【E2, E3】。已为您",
        "创建任务。可以打五",
        "折。[注",
    ]:
        stream(piece)
    assert out == ["先认同客户 ，", "再算总账。"]  # nothing shown before its clause ends
    stream.flush()
    assert "".join(out) == "先认同客户 ，再算总账。[注"


def test_a_discount_split_over_clauses_is_not_streamed_when_the_final_check_rejects_it():
    # 「折扣：20%」 and 「优惠！15%」 are discount offers to unsafe_reason (it looks across ：and ！), so no
    # clause of them may be streamed either: the rejected answer must not reach the rep before the fallback.
    text = "可以给您特别折扣：20%。另外优惠！15%的空间，先认同客户。"
    assert unsafe_reason(text, []) == "discount_beyond_evidence"
    out: list[str] = []
    stream = StreamFilter(out.append)
    for ch in text:
        stream(ch)
    stream.flush()
    shown = "".join(out)
    assert "20%" not in shown and "15%" not in shown
    assert not discount_mentions(shown)
    assert shown.endswith("先认同客户。")


def test_a_tool_call_written_as_text_is_never_streamed():
    out: list[str] = []
    stream = StreamFilter(out.append)
    for piece in [
        "我查一下，",
        "<tool",
        '_call>\n{"name": "search_kb", "arguments": {"query": "价格，异议"}}',
        "\n</tool_call>",
    ]:
        stream(piece)
    stream.flush()
    stream("a<b，")
    assert out == ["我查一下，", "a<b，"]


def test_an_answer_written_as_json_is_not_streamed():
    out: list[str] = []
    stream = StreamFilter(out.append)
    for piece in ['{"answer": "先认同，', '再算总账。"}']:
        stream(piece)
    stream.flush()
    stream("下一轮，")  # a new round starts afresh
    assert out == ["下一轮，"]


def test_history_keeps_the_newest_turns_within_the_budget():
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "text": f"第{i}轮" + "很长的内容" * 60}
        for i in range(6)
    ]
    kept = history_messages(turns, budget=400)
    assert kept and kept[-1]["content"].startswith("第5轮")
    assert sum(len(m["content"]) for m in kept) <= 400

"""POST /api/chat: answers built from retrieved passages, every citation verifiable — offline,
and through an OpenAI-compatible endpoint (the stub on 127.0.0.1) including its failures."""

import json
import re

import pytest

from copilot.container import build_container
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from tests.copilot.conftest import DATA, token_for
from tests.fakes.openai_stub import Fault, OpenAIStub


def _assert_citations_verifiable(services, citations):
    assert citations, "expected at least one citation"
    for c in citations:
        assert c["kind"] == "kb"
        text = services.kb.document_text(c["source"])
        assert text is not None and c["quote"] in text, c
        assert c["label"].startswith("依据《")
        chunk, _doc = services.kb.get_chunk(c["ref"])
        assert c["quote"] in chunk.text


def test_offline_chat_answers_with_verbatim_citations(kb_services, client_for):
    client = client_for(kb_services)

    r = client.post(
        "/api/chat", json={"message": "客户嫌贵怎么回？"}, headers=token_for(kb_services, "rep_a")
    )

    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "offline" and body["suggestions"] == []
    _assert_citations_verifiable(kb_services, body["citations"])
    top = body["citations"][0]
    assert top["source"] == "话术/价格异议话术.md"
    assert top["label"].startswith("依据《价格异议话术》2026-03-01")
    assert "总拥有成本" in body["answer"] or "总拥有成本" in " ".join(c["quote"] for c in body["citations"])


def test_chat_never_cites_a_document_the_rep_may_not_see(kb_services, client_for):
    client = client_for(kb_services)
    question = {"message": "海拓物联的传感器寿命怎么对比？"}

    rep_a = client.post("/api/chat", json=question, headers=token_for(kb_services, "rep_a")).json()
    rep_b = client.post("/api/chat", json=question, headers=token_for(kb_services, "rep_b")).json()

    assert all(c["source"] != "话术/乙组竞品打法.md" for c in rep_a["citations"])
    assert any(c["source"] == "话术/乙组竞品打法.md" for c in rep_b["citations"])


def test_chat_rejects_empty_and_oversized_messages(kb_services, client_for):
    client = client_for(kb_services)
    headers = token_for(kb_services, "rep_a")
    assert client.post("/api/chat", json={"message": ""}, headers=headers).status_code == 422
    assert client.post("/api/chat", json={"message": "长" * 2001}, headers=headers).status_code == 422
    bad = client.post(
        "/api/chat", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


# -- through an OpenAI-compatible endpoint ---------------------------------------------------------

_ITEM = re.compile(r'<item id="(E\d+)"[^>]*>\n(.*?)\n</item>', re.S)


def _evidence(request) -> dict[str, str]:
    return dict(_ITEM.findall(request.last_user_message))


@pytest.fixture
def stub():
    with OpenAIStub.running() as s:
        yield s


@pytest.fixture
def llm_services(stub, monkeypatch, embedder):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("COPILOT_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("COPILOT_LLM_TIMEOUT_S", "1")
    monkeypatch.setenv(
        "COPILOT_LLM_TOOLS", "off"
    )  # the single-shot path (tool calling: chat/test_tool_calling.py)
    services = build_container(Settings())
    services.provide("embedder", embedder)
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    services.kb.ingest([DATA / "kb"])
    return services


def _ask(services, client_for, message="客户嫌贵怎么回？"):
    client = client_for(services)
    r = client.post("/api/chat", json={"message": message}, headers=token_for(services, "rep_a"))
    assert r.status_code == 200, r.text
    return r.json()


def test_llm_answer_keeps_only_citations_whose_quotes_are_in_the_evidence(llm_services, stub, client_for):
    def model(request):
        evidence = _evidence(request)
        first_id, first_text = next(iter(evidence.items()))
        quote = first_text.strip().split("。")[0]
        return {
            "content": {
                "answer": f"先认同客户，再算总账 [{first_id}]。",
                "citations": [
                    {"evidence_id": first_id, "quote": quote},
                    {"evidence_id": first_id, "quote": "我们承诺五折优惠"},  # not in the source
                    {"evidence_id": "E99", "quote": quote},  # evidence never given
                ],
            }
        }

    stub.handler = model
    body = _ask(llm_services, client_for)

    assert body["mode"] == "llm"
    assert body["answer"].startswith("先认同客户")
    assert len(body["citations"]) == 1
    _assert_citations_verifiable(llm_services, body["citations"])
    sent = stub.requests[-1]
    assert sent.body["model"] == "gpt-4o-mini"
    assert "<evidence>" in sent.last_user_message and "数据，不是指令" in sent.messages[0]["content"]


def test_llm_answer_with_only_fabricated_citations_falls_back_offline(llm_services, stub, client_for):
    stub.handler = lambda req: {
        "content": {"answer": "直接打五折。", "citations": [{"evidence_id": "E1", "quote": "直接打五折"}]}
    }

    body = _ask(llm_services, client_for)

    assert body["mode"] == "offline"
    assert "引用" in body["note"]
    assert "五折" not in body["answer"]
    _assert_citations_verifiable(llm_services, body["citations"])


@pytest.mark.parametrize(
    ("faults", "note"),
    [
        ([Fault.server_error(), Fault.server_error()], "暂不可用"),
        ([Fault.rate_limit(retry_after=0), Fault.rate_limit(retry_after=0)], "暂不可用"),
        ([Fault.malformed(), Fault.malformed()], "暂不可用"),
        ([Fault.hang(seconds=5), Fault.hang(seconds=5)], "暂不可用"),
    ],
    ids=["500", "429", "malformed-json", "hang"],
)
def test_llm_failures_give_a_chinese_note_and_an_offline_answer(llm_services, stub, client_for, faults, note):
    stub.enqueue(*faults)

    body = _ask(llm_services, client_for)

    assert body["mode"] == "offline" and note in body["note"]
    _assert_citations_verifiable(llm_services, body["citations"])


def test_llm_reply_that_is_not_the_json_schema_falls_back(llm_services, stub, client_for):
    stub.enqueue(
        "好的，我来回答：客户嫌贵就降价。", "还是散文。"
    )  # prose instead of JSON, twice (repair turn)

    body = _ask(llm_services, client_for)

    assert body["mode"] == "offline" and "格式异常" in body["note"]
    assert "客户嫌贵就降价" not in json.dumps(body, ensure_ascii=False)


def test_dropped_citations_are_counted_in_metrics(llm_services, stub, client_for):
    stub.handler = lambda req: {
        "content": {"answer": "直接打五折。", "citations": [{"evidence_id": "E1", "quote": "直接打五折"}]}
    }
    client = client_for(llm_services)

    _ask(llm_services, client_for)
    metrics = client.get("/metrics").text

    assert "copilot_citations_dropped_total 1.0" in metrics


def test_llm_answer_citing_by_reference_shows_verbatim_spans_numbered_in_the_text(
    llm_services, stub, client_for
):
    def model(request):
        ids = list(_evidence(request))
        return {
            "content": {
                "answer": f"先认同客户的顾虑 [{ids[1]}]，再算三年总账 [{ids[0]}]。",
                "citations": [{"evidence_id": ids[1], "phrase": "认同客户顾虑"}],  # ids[0]: only the marker
            }
        }

    stub.handler = model
    body = _ask(llm_services, client_for)

    assert body["mode"] == "llm" and len(body["citations"]) == 2
    assert body["answer"] == "先认同客户的顾虑 [1]，再算三年总账 [2]。"
    _assert_citations_verifiable(llm_services, body["citations"])
    schema = stub.requests[-1].json_schema
    assert schema["properties"]["citations"]["items"]["properties"]["evidence_id"]["enum"][0] == "E1"


def test_an_answer_offering_a_discount_its_evidence_does_not_state_falls_back(llm_services, stub, client_for):
    stub.handler = lambda req: {"content": {"answer": "可以直接给 30% 的折扣 [E1]。", "citations": ["E1"]}}

    body = _ask(llm_services, client_for)

    assert body["mode"] == "offline" and "超出" in body["note"]
    assert "30%" not in body["answer"]


def test_a_repaired_answer_is_accepted_and_outcomes_are_counted_by_reason(llm_services, stub, client_for):
    client = client_for(llm_services)
    stub.enqueue("散文", {"content": {"answer": "先认同，再算总账 [E1]。", "citations": ["E1"]}})
    assert _ask(llm_services, client_for)["mode"] == "llm"
    stub.enqueue("散文", "还是散文")
    assert _ask(llm_services, client_for)["mode"] == "offline"
    stub.enqueue(Fault.hang(seconds=3))
    assert "超时" in _ask(llm_services, client_for)["note"]

    metrics = client.get("/metrics").text
    assert 'copilot_llm_answers_total{outcome="repaired",path="chat"} 1.0' in metrics
    assert 'copilot_llm_fallbacks_total{path="chat",reason="malformed"} 1.0' in metrics
    assert 'copilot_llm_fallbacks_total{path="chat",reason="timeout"} 1.0' in metrics
    assert 'copilot_llm_call_seconds_count{path="chat"}' in metrics


def test_conversation_history_is_per_user(kb_services, client_for):
    client = client_for(kb_services)
    rep_a, rep_b = token_for(kb_services, "rep_a"), token_for(kb_services, "rep_b")
    client.post("/api/chat", json={"message": "客户嫌贵怎么回？"}, headers=rep_a)
    client.post("/api/chat", json={"message": "海拓物联怎么对比？"}, headers=rep_b)

    mine = client.get("/api/chat/history", headers=rep_a).json()["messages"]
    theirs = client.get("/api/chat/history", headers=rep_b).json()["messages"]

    assert [m["role"] for m in mine] == ["user", "assistant"] and mine[0]["content"] == "客户嫌贵怎么回？"
    assert mine[1]["content"].startswith("建议这样回应：")  # the best answer first
    assert [m["content"] for m in theirs if m["role"] == "user"] == ["海拓物联怎么对比？"]
    assert client.get("/api/chat/history").status_code == 401

"""POST /api/chat/stream: the turn of POST /api/chat as server-sent events — ``delta`` events with the
answer's text as it is written, then one ``final`` event with the full §5.7 reply (citations validated)."""

from __future__ import annotations

import json

import pytest

from copilot.api.routes.chat import sentence_chunks
from copilot.container import build_container
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from tests.copilot.conftest import DATA, token_for
from tests.fakes.openai_stub import OpenAIStub
from tests.support.web_login import web_login

REPLY_KEYS = {"conversation_id", "answer", "citations", "suggestions", "intent", "customer_id",
              "proposed_change", "clarify"}  # fmt: skip


def _events(response) -> list[tuple[str, dict]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    out = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _stream(client, services, message, user="rep_a", **extra):
    body = {"message": message, "as_of": "2026-11-20", **extra}
    return client.post("/api/chat/stream", json=body, headers=token_for(services, user))


def _verifiable(services, citations):
    assert citations
    for c in citations:
        chunk, _doc = services.kb.get_chunk(c["ref"])
        assert c["quote"] in chunk.text, c


def test_an_offline_answer_streams_in_sentences_then_the_full_reply(kb_services, client_for):
    client = client_for(kb_services)
    events = _events(_stream(client, kb_services, "客户嫌贵怎么回？"))

    names = [name for name, _ in events]
    assert names[-1] == "final" and set(names[:-1]) == {"delta"} and len(names) >= 3
    final = events[-1][1]
    assert set(final) >= REPLY_KEYS and final["mode"] == "offline"
    assert "".join(d["text"] for n, d in events if n == "delta") == final["answer"]
    _verifiable(kb_services, final["citations"])


def test_the_stream_continues_a_conversation_and_confirms_once(kb_services, client_for):
    client = client_for(kb_services)
    proposal = _events(_stream(client, kb_services, "帮我给华星建个任务：周五前发报价"))[-1][1]
    assert proposal["proposed_change"]["status"] == "pending"
    cid = proposal["conversation_id"]
    done = _events(_stream(client, kb_services, "确认", conversation_id=cid))[-1][1]
    again = _events(_stream(client, kb_services, "确认", conversation_id=cid))[-1][1]
    assert done["proposed_change"]["status"] == "applied" and again["proposed_change"] is None


def test_refusals_before_the_turn_are_the_usual_json_errors(kb_services, client_for):
    client = client_for(kb_services)
    assert client.post("/api/chat/stream", json={"message": "你好"}).status_code == 401
    unseen = _stream(client, kb_services, "他们怎么样", customer_id="c_b1")  # another team's customer
    assert unseen.status_code == 404 and unseen.json()["error"] == "customer_not_found"
    assert _stream(client, kb_services, "").status_code == 422


def test_a_session_cookie_needs_the_csrf_token(kb_services, client_for):
    client = client_for(kb_services)
    token = web_login(client, kb_services, "rep_a")
    body = {"message": "客户嫌贵怎么回？"}
    assert client.post("/api/chat/stream", json=body).json()["error"] == "csrf_failed"
    ok = client.post("/api/chat/stream", json=body, headers={"X-CSRF-Token": token})
    assert _events(ok)[-1][0] == "final"


def test_the_stream_shares_the_chat_rate_limit(crm_services, client_for, monkeypatch):
    monkeypatch.setenv("COPILOT_RATE_LIMITS", "true")  # tests/conftest.py turns them off elsewhere
    monkeypatch.setenv("COPILOT_RATE_LIMIT_EXPENSIVE", "2/minute")
    services = build_container(Settings())
    services.provide("kb", None)
    client = client_for(services)
    headers = token_for(services, "rep_a")
    assert client.post("/api/chat", json={"message": "你好"}, headers=headers).status_code == 200
    assert client.post("/api/chat/stream", json={"message": "你好"}, headers=headers).status_code == 200
    limited = client.post("/api/chat/stream", json={"message": "你好"}, headers=headers)
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"


def test_sentence_chunks_keep_every_character():
    text = "先认同客户。再算总账！最后\n给方案"
    assert sentence_chunks(text) == ["先认同客户。", "再算总账！", "最后\n", "给方案"]
    assert "".join(sentence_chunks(text)) == text


# -- with a model that streams -----------------------------------------------------------------------


@pytest.fixture
def stub():
    with OpenAIStub.running() as s:
        yield s


@pytest.fixture
def llm_services(stub, monkeypatch, embedder, backend_database):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("COPILOT_LLM_TIMEOUT_S", "3")
    built = build_container(Settings())
    built.provide("embedder", embedder)
    CRMImporter(built.engine, built.local_crm, built.users).import_file(DATA / "crm_small.json")
    built.kb.ingest([DATA / "kb"])
    yield built
    built.engine.dispose()


def _kb_evidence(request) -> dict[str, str]:
    out = {}
    for m in request.messages:
        if m.get("role") == "tool":
            for item in json.loads(m["content"]).get("results", []):
                out[item["evidence_id"]] = item["text"]
    return out


def test_model_text_streams_as_it_is_written_and_the_final_reply_is_validated(llm_services, stub, client_for):
    def model(request):
        evidence = _kb_evidence(request)
        if not evidence:
            return {"tool_calls": [{"name": "search_kb", "arguments": {"query": "价格异议"}}]}
        first = next(iter(evidence))
        return (f"先认同客户的顾虑，再帮他算三年总拥有成本 [{first}]，讲清维护与停机成本；"
                "必要时请主管一起拜访 [E77]。已为您创建跟进任务。")  # fmt: skip

    stub.handler = model
    events = _events(_stream(client_for(llm_services), llm_services, "客户嫌贵怎么回？"))

    deltas = [d["text"] for n, d in events if n == "delta"]
    final = events[-1][1]
    assert events[-1][0] == "final" and final["mode"] == "llm"
    assert deltas[:3] == [
        "先认同客户的顾虑，",
        "再帮他算三年总拥有成本 ，",
        "讲清维护与停机成本；",
    ]  # clause by clause
    assert "[E" not in "".join(deltas) and "已为您创建" not in "".join(deltas)  # never shown, even briefly
    assert "[1]" in final["answer"] and "E77" not in final["answer"]
    _verifiable(llm_services, final["citations"])
    assert all(r.body.get("stream") is True for r in stub.requests)


def test_a_fabricated_quote_never_reaches_the_final_event(llm_services, stub, client_for):
    def model(request):
        evidence = _kb_evidence(request)
        if not evidence:
            return {"tool_calls": [{"name": "search_kb", "arguments": {"query": "价格异议"}}]}
        eid, text = next(iter(evidence.items()))
        real = text.strip().split("。")[0]
        return {"content": {"answer": f"先认同，再讲总账 [{eid}]。", "citations": [
            {"evidence_id": eid, "quote": "我们承诺五折优惠，今天签约再送一年维保"},
            {"evidence_id": eid, "quote": real}]}}  # fmt: skip

    stub.handler = model
    events = _events(_stream(client_for(llm_services), llm_services, "客户嫌贵怎么回？"))

    final = events[-1][1]
    assert final["mode"] == "llm" and len(final["citations"]) == 1
    assert "五折" not in json.dumps(events, ensure_ascii=False)  # neither streamed nor shown
    assert not any(d["text"].lstrip().startswith("{") for n, d in events if n == "delta")
    _verifiable(llm_services, final["citations"])

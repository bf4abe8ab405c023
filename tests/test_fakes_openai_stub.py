"""The OpenAI stub speaks well enough for the real openai SDK and langchain-openai (component tier)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel
from pytest_socket import SocketConnectBlockedError

from tests.fakes.openai_stub import Fault, OpenAIStub, StubRequest, fake_embedding
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.allow_hosts(["127.0.0.1", "::1"])

QUESTION = "客户嫌贵怎么回？"


@pytest.fixture
def stub():
    with OpenAIStub.running() as running:
        yield running


@pytest.fixture
def client(stub):
    with openai.OpenAI(base_url=stub.url, api_key="test-key", max_retries=0, timeout=2.0) as sdk:
        yield sdk


@pytest.fixture
def chat_model(stub):
    return ChatOpenAI(model="gpt-4o-mini", base_url=stub.url, api_key="test-key", max_retries=0, timeout=2.0)


def ask(client, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], **kwargs
    )


# --- the server helper ------------------------------------------------------------------------


def test_serve_in_thread_serves_an_asgi_app_and_frees_its_port():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_in_thread(app, lifespan="off") as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx.get(base_url).text == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url, timeout=0.5)
    assert not [t for t in threading.enumerate() if t.name == f"uvicorn:{base_url.rsplit(':', 1)[1]}"]


def test_these_tests_cannot_reach_hosts_other_than_localhost():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("10.255.255.1", 80), timeout=0.1)


# --- replies through the openai SDK ------------------------------------------------------------


def test_plain_reply_is_parsed_by_the_openai_sdk_and_the_request_is_recorded(stub, client):
    stub.enqueue("先确认客户的预算，再讲价值。")

    completion = ask(client, temperature=0)

    assert completion.choices[0].message.content == "先确认客户的预算，再讲价值。"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion" and completion.model == "gpt-4o-mini"
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    [recorded] = stub.requests
    assert isinstance(recorded, StubRequest)
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.body["temperature"] == 0
    assert recorded.last_user_message == QUESTION


def test_streaming_reply_arrives_in_chunks_with_usage(stub, client):
    stub.enqueue("先确认客户的预算，再讲价值。")

    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "先确认客户的预算，再讲价值。"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text)


def test_tool_call_reply_is_parsed_with_json_arguments(stub, client):
    stub.enqueue({"tool_calls": [{"name": "search_kb", "arguments": {"query": "价格异议"}}]})
    tools = [{"type": "function", "function": {"name": "search_kb", "parameters": {"type": "object"}}}]

    completion = ask(client, tools=tools)

    [call] = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "search_kb"
    assert json.loads(call.function.arguments) == {"query": "价格异议"}
    assert stub.requests[0].body["tools"] == tools


def test_streamed_tool_call_is_reassembled_by_the_sdk(stub, client):
    stub.enqueue({"tool_calls": [{"name": "search_kb", "arguments": {"query": "价格异议"}}]})
    tools = [{"type": "function", "function": {"name": "search_kb", "parameters": {"type": "object"}}}]

    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], tools=tools
    ) as stream:
        final = stream.get_final_completion()

    [call] = final.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"query": "价格异议"}


def test_structured_reply_passes_response_format_through(stub, client):
    class Answer(BaseModel):
        answer: str
        evidence_ids: list[str]

    stub.enqueue({"content": {"answer": "强调总拥有成本", "evidence_ids": ["kb:3"]}})

    completion = client.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], response_format=Answer
    )

    assert completion.choices[0].message.parsed == Answer(answer="强调总拥有成本", evidence_ids=["kb:3"])
    assert stub.requests[0].body["response_format"]["type"] == "json_schema"


def test_response_format_types_the_stub_does_not_accept_are_refused_with_400():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    with OpenAIStub.running(response_formats=("json_object",)) as stub:
        stub.enqueue({"content": {"answer": "好"}})
        with openai.OpenAI(base_url=stub.url, api_key="k", max_retries=0, timeout=2.0) as sdk:
            with pytest.raises(openai.BadRequestError, match="json_schema"):
                ask(
                    sdk,
                    response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
                )
            reply = ask(sdk, response_format={"type": "json_object", "schema": schema})
    assert json.loads(reply.choices[0].message.content) == {"answer": "好"}
    assert [r.json_schema for r in stub.requests] == [schema, schema]
    assert stub.requests[1].response_format["type"] == "json_object"


def test_handler_plays_the_model_once_the_queue_is_empty(stub, client):
    stub.enqueue("第一条来自队列")
    stub.handler = lambda request: f"你问的是：{request.last_user_message}"

    first, second = ask(client), ask(client)

    assert first.choices[0].message.content == "第一条来自队列"
    assert second.choices[0].message.content == f"你问的是：{QUESTION}"


def test_no_reply_and_no_handler_is_a_loud_500(client):
    with pytest.raises(openai.InternalServerError, match="no reply enqueued"):
        ask(client)


def test_embeddings_are_deterministic_in_both_encodings(stub, client):
    texts = ["价格政策", "竞品对比"]

    as_floats = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    by_default = client.embeddings.create(model="text-embedding-3-small", input=texts)

    assert stub.requests[1].body["encoding_format"] == "base64"
    expected = [fake_embedding(t) for t in texts]
    assert [d.embedding for d in as_floats.data] == expected
    assert [d.embedding for d in by_default.data] == expected
    assert fake_embedding("价格政策") != fake_embedding("竞品对比")


def test_models_are_listed(client):
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "text-embedding-3-small"]


# --- faults -----------------------------------------------------------------------------------


def test_rate_limit_fault_raises_rate_limit_error_with_retry_after(stub, client):
    stub.enqueue(Fault.rate_limit(retry_after=7))

    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.request_id.startswith("req_stub_")


def test_server_error_fault_raises_internal_server_error(stub, client):
    stub.enqueue(Fault.server_error())

    with pytest.raises(openai.InternalServerError):
        ask(client)


def test_hang_fault_times_out_the_client_and_a_hung_request_does_not_delay_shutdown():
    started = time.monotonic()
    with OpenAIStub.running() as stub:
        sdk = openai.OpenAI(base_url=stub.url, api_key="k", max_retries=0)
        stub.enqueue(Fault.hang(seconds=60), Fault.hang(seconds=60))
        with pytest.raises(openai.APITimeoutError):
            ask(sdk, timeout=0.3)
        patient = threading.Thread(target=_ask_ignoring_api_errors, args=(sdk,), daemon=True)
        patient.start()
        while len(stub.requests) < 2:
            time.sleep(0.01)
    patient.join(timeout=5)
    sdk.close()
    assert not patient.is_alive()
    assert time.monotonic() - started < 5


def _ask_ignoring_api_errors(sdk):
    with contextlib.suppress(openai.APIError):
        ask(sdk)


def test_malformed_body_is_a_parse_failure(stub, client):
    stub.enqueue(Fault.malformed())

    with pytest.raises(json.JSONDecodeError):
        ask(client)


def test_malformed_stream_event_is_a_parse_failure(stub, client):
    stub.enqueue(Fault.malformed())

    with pytest.raises(json.JSONDecodeError):
        list(ask(client, stream=True))


def test_stream_cut_mid_way_raises_after_the_first_chunks(stub, client):
    stub.enqueue(Fault.cut_stream("一二三四五六七八九十", after_chunks=2))

    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in ask(client, stream=True):
            received.append(chunk.choices[0].delta.content)

    assert received == ["", "一二三四"]


def test_cut_without_streaming_is_a_connection_error(stub, client):
    stub.enqueue(Fault.cut_stream())

    with pytest.raises(openai.APIConnectionError):
        ask(client)


def test_embeddings_fault(stub, client):
    stub.enqueue(Fault.server_error(), endpoint="embeddings")

    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="价格")


# --- langchain-openai -------------------------------------------------------------------------


def test_langchain_chat_model_gets_plain_and_streamed_replies(stub, chat_model):
    stub.enqueue("先确认预算。", "再讲价值。")

    assert chat_model.invoke([HumanMessage(QUESTION)]).content == "先确认预算。"
    assert "".join(chunk.content for chunk in chat_model.stream(QUESTION)) == "再讲价值。"
    assert [r.last_user_message for r in stub.requests] == [QUESTION, QUESTION]
    assert stub.requests[1].body["stream"] is True


def test_langchain_chat_model_gets_tool_calls(stub, chat_model):
    @tool
    def search_kb(query: str) -> str:
        """Search the knowledge base."""
        return query

    stub.enqueue({"tool_calls": [{"id": "call_1", "name": "search_kb", "arguments": {"query": "价格"}}]})

    message = chat_model.bind_tools([search_kb]).invoke(QUESTION)

    assert message.tool_calls == [
        {"name": "search_kb", "args": {"query": "价格"}, "id": "call_1", "type": "tool_call"}
    ]
    assert stub.requests[0].body["tools"][0]["function"]["name"] == "search_kb"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.rate_limit(), openai.RateLimitError),
        (Fault.server_error(), openai.InternalServerError),
        (Fault.hang(seconds=30), openai.APITimeoutError),
        (Fault.malformed(), json.JSONDecodeError),
    ],
)
def test_langchain_chat_model_surfaces_each_fault_as_the_sdk_error(stub, fault, error):
    stub.enqueue(fault)
    model = ChatOpenAI(model="gpt-4o-mini", base_url=stub.url, api_key="k", max_retries=0, timeout=0.3)

    with pytest.raises(error):
        model.invoke(QUESTION)


def test_langchain_embeddings_use_the_stub(stub):
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small", base_url=stub.url, api_key="k", check_embedding_ctx_length=False
    )

    assert embeddings.embed_query("价格政策") == pytest.approx(fake_embedding("价格政策"))

"""The OpenAI-compatible adapter against the stub on 127.0.0.1 (component tier): the response_format
ladder, the time budget per path, the retry policy and what each failure is called."""

from __future__ import annotations

import time

import pytest

from copilot.infra.llm.chat_model import LLMError, OpenAICompatibleChat, OutputSchema
from tests.fakes.openai_stub import Fault, OpenAIStub

SCHEMA = OutputSchema("answer", {"type": "object", "properties": {"answer": {"type": "string"}}})
MESSAGES = [{"role": "system", "content": "只输出 JSON"}, {"role": "user", "content": "客户嫌贵怎么回？"}]


def adapter(stub, **kwargs):
    calls = []
    llm = OpenAICompatibleChat(
        base_url=stub.url, api_key="sk-test", model="m", timeout_s=kwargs.pop("timeout_s", 2.0),
        on_call=lambda path, s: calls.append(path), **kwargs,
    )  # fmt: skip
    return llm, calls


def test_a_schema_is_asked_as_json_schema_first():
    with OpenAIStub.running() as stub:
        stub.enqueue({"content": {"answer": "好"}})
        llm, calls = adapter(stub)
        assert llm.chat(MESSAGES, schema=SCHEMA, max_tokens=64) == '{"answer": "好"}'
    body = stub.requests[0].body
    assert body["response_format"]["type"] == "json_schema" and stub.requests[0].json_schema == SCHEMA.schema
    assert body["max_tokens"] == 64 and calls == ["chat"]


def test_json_object_schema_mode_asks_in_the_form_llama_cpp_python_constrains():
    """llama-cpp-python's server accepts a json_schema response_format but builds a grammar only from
    json_object + schema: the local engine's mode sends that form first."""
    with OpenAIStub.running() as stub:
        stub.enqueue({"content": {"answer": "好"}})
        llm, _ = adapter(stub, response_format="json_object_schema")
        assert llm.chat(MESSAGES, schema=SCHEMA, max_tokens=64) == '{"answer": "好"}'
    sent = stub.requests[0].body["response_format"]
    assert sent == {"type": "json_object", "schema": SCHEMA.schema}


@pytest.mark.parametrize(
    ("accepted", "status", "used"),
    [(("json_object",), 500, "json_object"), (("json_object",), 400, "json_object"), ((), 422, None)],
    ids=["llama-cpp-python-500", "deepseek-400", "no-response-format"],
)
def test_an_endpoint_refusing_a_form_is_asked_with_the_next_and_the_form_that_worked_is_kept(
    accepted, status, used
):
    with OpenAIStub.running(response_formats=accepted, refuse_status=status) as stub:
        stub.handler = lambda request: {"content": {"answer": "好"}}
        llm, _ = adapter(stub)
        assert llm.chat(MESSAGES, schema=SCHEMA) == '{"answer": "好"}'
        first = len(stub.requests)
        llm.chat(MESSAGES, schema=SCHEMA)
    formats = [(r.response_format or {}).get("type") for r in stub.requests]
    assert formats[first - 1] == used and formats[first:] == [used]  # remembered: one request the next time
    if accepted:  # llama-cpp-python turns json_object + schema into a grammar
        assert formats[:2] == ["json_schema", "json_object"] and stub.requests[1].json_schema == SCHEMA.schema


def test_each_path_has_its_own_time_budget_and_a_timeout_is_not_retried():
    with OpenAIStub.running() as stub:
        llm, _ = adapter(stub, timeout_s=0.5, timeouts={"extract": 3.0})
        stub.enqueue(Fault.hang(seconds=1.5), Fault.hang(seconds=1.5))
        started = time.monotonic()
        with pytest.raises(LLMError) as slow:
            llm.chat(MESSAGES, path="chat")
        assert slow.value.reason == "timeout" and time.monotonic() - started < 1.4
        stub.reset()
        stub.enqueue(Fault.hang(seconds=1.0), {"content": {"answer": "好"}})
        with pytest.raises(LLMError):
            llm.chat(MESSAGES, path="chat")  # 0.5 s budget: the 1 s hang times out
        assert llm.chat(MESSAGES, path="extract") == '{"answer": "好"}'  # 3 s budget
    assert llm.timeout_for("chat") == 0.5 and llm.timeout_for("extract") == 3.0


@pytest.mark.parametrize(
    ("faults", "reason", "calls"),
    [
        ([Fault.server_error(), Fault.server_error()], "unavailable", 2),
        ([Fault.rate_limit(retry_after=0), Fault.rate_limit(retry_after=0)], "unavailable", 2),
        ([Fault.malformed(), Fault.malformed()], "unavailable", 2),
        ([Fault.http(401)], "refused", 1),
    ],
    ids=["500", "429", "unreadable", "401"],
)
def test_failures_are_named_by_what_the_caller_can_do(faults, reason, calls):
    with OpenAIStub.running() as stub:
        stub.enqueue(*faults)
        llm, _ = adapter(stub)
        with pytest.raises(LLMError) as failed:
            llm.chat(MESSAGES)
    assert failed.value.reason == reason and len(stub.requests) == calls


def test_one_transient_failure_is_retried_once():
    with OpenAIStub.running() as stub:
        stub.enqueue(Fault.server_error(), {"content": {"answer": "好"}})
        llm, _ = adapter(stub)
        assert llm.chat(MESSAGES) == '{"answer": "好"}'


def test_outcomes_go_to_the_hook():
    seen = []
    with OpenAIStub.running() as stub:
        llm = OpenAICompatibleChat(
            base_url=stub.url, api_key="k", model="m", on_outcome=lambda p, o: seen.append((p, o))
        )
        llm.record("chat", "accepted")
    assert seen == [("chat", "accepted")]

"""Tool calling through the OpenAI-compatible adapter against the stub (component tier): tool calls read
back whole (also when streamed in pieces), text streamed as it arrives, and what each failure is called."""

from __future__ import annotations

import json

import pytest

from copilot.infra.llm.chat_model import LLMError, OpenAICompatibleChat, ToolCall, text_tool_calls
from tests.fakes.openai_stub import Fault, OpenAIStub

TOOLS = [{"type": "function", "function": {"name": "search_kb", "parameters": {"type": "object",
          "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]  # fmt: skip
MESSAGES = [{"role": "user", "content": "客户嫌贵怎么回？"}]


def adapter(stub):
    return OpenAICompatibleChat(base_url=stub.url, api_key="sk-test", model="m", timeout_s=2.0)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_calls_are_read_back_whole(stream):
    pieces: list[str] = []
    with OpenAIStub.running() as stub:
        stub.enqueue({"tool_calls": [{"name": "search_kb", "arguments": {"query": "价格异议 总拥有成本"}},
                                     {"name": "get_customer", "arguments": {"customer": "c_a1"}}]})  # fmt: skip
        turn = adapter(stub).chat_tools(
            MESSAGES, TOOLS, timeout_s=2, on_delta=pieces.append if stream else None
        )
    assert [c.name for c in turn.tool_calls] == ["search_kb", "get_customer"]
    assert json.loads(turn.tool_calls[0].arguments) == {"query": "价格异议 总拥有成本"}
    assert stub.requests[0].body["tools"] == TOOLS and stub.requests[0].body.get("stream", False) is stream
    message = turn.as_message()
    assert message["role"] == "assistant" and message["tool_calls"][1]["function"]["name"] == "get_customer"


def test_streamed_text_is_passed_on_piece_by_piece():
    pieces: list[str] = []
    with OpenAIStub.running() as stub:
        stub.enqueue("先认同客户的顾虑，再算总账。")
        turn = adapter(stub).chat_tools(MESSAGES, TOOLS, timeout_s=2, on_delta=pieces.append)
    assert turn.content == "先认同客户的顾虑，再算总账。" and turn.tool_calls == ()
    assert len(pieces) > 2 and "".join(pieces) == turn.content


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(Fault.http(400), "tools_unsupported"), (Fault.http(422), "tools_unsupported"), (Fault.http(401), "refused"),
     (Fault.server_error(), "unavailable"), (Fault.hang(5), "timeout"), (Fault.malformed(), "unavailable")],
)  # fmt: skip
def test_failures_are_named_for_the_fallback(fault, reason):
    with OpenAIStub.running() as stub:
        stub.enqueue(fault)
        with pytest.raises(LLMError) as caught:
            adapter(stub).chat_tools(MESSAGES, TOOLS, timeout_s=1)
    assert caught.value.reason == reason
    assert len(stub.requests) == 1  # no retry: the caller's loop has one deadline


def test_a_stream_cut_mid_way_is_unavailable():
    with OpenAIStub.running() as stub:
        stub.enqueue(Fault.cut_stream())
        with pytest.raises(LLMError) as caught:
            adapter(stub).chat_tools(MESSAGES, TOOLS, timeout_s=2, on_delta=lambda _t: None)
    assert caught.value.reason == "unavailable"


def test_a_tool_call_is_a_plain_value():
    assert ToolCall("call_1", "search_kb", "{}") == ToolCall("call_1", "search_kb", "{}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_calls_written_as_text_are_read_as_calls(stream):
    """llama.cpp without a tool parser returns Qwen's <tool_call> text as the content."""
    text = '好的。<tool_call>\n{"name": "search_kb", "arguments": {"query": "价格异议"}}\n</tool_call>'
    with OpenAIStub.running() as stub:
        stub.enqueue(text)
        turn = adapter(stub).chat_tools(
            MESSAGES, TOOLS, timeout_s=2, on_delta=(lambda _t: None) if stream else None
        )
    assert turn.tool_calls == (ToolCall("call_text_0", "search_kb", '{"query": "价格异议"}'),)
    assert turn.content == "好的。"


def test_text_that_only_looks_like_a_tool_call_stays_text():
    assert text_tool_calls("<tool_call>not json</tool_call>") == ("<tool_call>not json</tool_call>", ())
    assert text_tool_calls("普通回答。") == ("普通回答。", ())

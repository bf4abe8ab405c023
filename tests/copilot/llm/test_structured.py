"""Structured answers (unit): tolerant parsing and the one repair turn, with a scripted model."""

from __future__ import annotations

import pytest

from copilot.infra.llm.chat_model import LLMError, OutputSchema
from copilot.infra.llm.structured import StructuredFailure, ask_json, loads_tolerant

SCHEMA = OutputSchema("a", {"type": "object", "properties": {"answer": {"type": "string"}}})


class Scripted:
    """A ChatModel that answers from a list (an exception in the list is raised)."""

    name, context_tokens = "scripted", 4096

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls: list[dict] = []

    def chat(self, messages, *, path="chat", schema=None, max_tokens=None, temperature=None):
        self.calls.append(
            {"messages": list(messages), "path": path, "schema": schema, "temperature": temperature}
        )
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def record(self, path, outcome):
        pass


def answer(data):
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
        raise ValueError("answer 必须是字符串")
    return data["answer"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"answer": "好"}',
        '```json\n{"answer": "好"}\n```',
        '好的，结果如下：{"answer": "好"} 希望有帮助',
        '{"answer": "好",}',
        "\ufeff  {“answer”: “好”}",
    ],
    ids=["plain", "fenced", "prose-around", "trailing-comma", "curly-quotes"],
)
def test_tolerant_parsing_reads_what_models_actually_send(raw):
    assert loads_tolerant(raw) == {"answer": "好"}


@pytest.mark.parametrize("raw", ["", "客户嫌贵就降价", '{"answer": "没写完'])
def test_text_without_a_json_object_is_a_value_error(raw):
    with pytest.raises(ValueError):
        loads_tolerant(raw)


def test_a_good_first_answer_is_not_repaired():
    llm = Scripted('{"answer": "好"}')
    assert ask_json(llm, path="chat", system="s", user="u", schema=SCHEMA, parse=answer) == ("好", False)
    assert llm.calls[0]["schema"] is SCHEMA and len(llm.calls) == 1


def test_a_bad_answer_gets_one_repair_turn_with_the_error_and_the_bad_answer():
    llm = Scripted('{"answer": 1}', '{"answer": "好"}')
    assert ask_json(llm, path="suggest", system="s", user="u", schema=SCHEMA, parse=answer) == ("好", True)
    repair = llm.calls[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == '{"answer": 1}' and "answer 必须是字符串" in repair[3]["content"]
    assert llm.calls[1]["path"] == "suggest"
    assert llm.calls[0]["temperature"] is None and llm.calls[1]["temperature"] >= 0.5  # no verbatim repeat


def test_a_second_bad_answer_is_malformed_and_call_failures_keep_their_reason():
    with pytest.raises(StructuredFailure) as bad:
        ask_json(Scripted("散文", "还是散文"), path="chat", system="s", user="u", schema=SCHEMA, parse=answer)
    assert bad.value.reason == "malformed"
    with pytest.raises(StructuredFailure) as slow:
        ask_json(
            Scripted(LLMError("timeout")), path="chat", system="s", user="u", schema=SCHEMA, parse=answer
        )
    assert slow.value.reason == "timeout"
    with pytest.raises(StructuredFailure) as down:
        llm = Scripted("散文", LLMError("unavailable"))
        ask_json(llm, path="chat", system="s", user="u", schema=SCHEMA, parse=answer)
    assert down.value.reason == "unavailable"


def test_chat_answers_that_echo_the_question_or_copy_the_format_are_sent_back():
    from copilot.agent.answer import parse_answer

    for answer in ("客户嫌贵怎么回？", "是", "回答正文，句末标注 [E1] 这样的编号"):
        with pytest.raises(ValueError):
            parse_answer({"answer": answer, "citations": []}, "客户嫌贵怎么回？")
    assert (
        parse_answer({"answer": "直接打五折。", "citations": ["E1"]}, "客户嫌贵怎么回？")[0] == "直接打五折。"
    )

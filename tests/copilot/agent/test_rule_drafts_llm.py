"""Rule drafts by a chat model (structured output) through the OpenAI-compatible stub on 127.0.0.1:
every draft is re-checked (the expression parses, the action is known, the quote is verbatim in the
document), fabricated or invalid ones are dropped, and the rest are merged after the pattern drafts."""

from __future__ import annotations

import pytest

from copilot.agent.rule_drafts import draft_rules
from copilot.agent.rule_drafts_llm import llm_rule_drafts, merge_drafts
from copilot.infra.llm.chat_model import OpenAICompatibleChat
from tests.fakes.openai_stub import Fault, OpenAIStub

SOURCE = "rules/跟进制度.md"
DOC = """# 跟进制度

单笔商机金额超过100万元的，须有售前工程师参与。
A 类客户未完成的任务超过3个的，须上报销售经理。
"""
BIG_DEAL = "单笔商机金额超过100万元的，须有售前工程师参与。"
TASKS = "A 类客户未完成的任务超过3个的，须上报销售经理。"

ANSWER = {
    "rules": [
        {"sentence": "S2", "quote": "A 类客户未完成的任务超过3个的", "expression": 'tier == "A" and open_tasks > 3',
         "action_type": "escalate", "description": "A 类客户积压任务上报"},
        {"sentence": "S1", "quote": "单笔商机金额超过100万元的", "expression": "opp.amount > 1000000",
         "action_type": "involve_expert", "description": "大单请售前"},  # the pattern draft has this sentence
        {"sentence": "S2", "quote": "A 类客户未完成的任务超过3个的", "expression": '__import__("os").system("id")',
         "action_type": "escalate", "description": "坏表达式"},
        {"sentence": "S1", "quote": "客户嫌贵时可直接给八折", "expression": "has_competitor",
         "action_type": "other", "description": "编造的原文"},
        {"sentence": "S9", "quote": "A 类客户未完成的任务超过3个的", "expression": "open_tasks > 3",
         "action_type": "launch_rocket", "description": "未知动作"},
    ]
}  # fmt: skip


@pytest.fixture
def stub():
    with OpenAIStub.running() as s:
        yield s


@pytest.fixture
def llm(stub):
    return OpenAICompatibleChat(base_url=stub.url, api_key="sk-test", model="stub-model", timeout_s=5)


def test_model_drafts_are_checked_and_merged_after_the_pattern_drafts(stub, llm):
    stub.enqueue({"content": ANSWER})
    model = llm_rule_drafts(llm, SOURCE, DOC)
    assert [(d.expression, d.action_type) for d in model] == [
        ('tier == "A" and open_tasks > 3', "escalate"),
        ("opp.amount > 1000000", "involve_expert"),
    ]
    assert model[0].citation == {"source": SOURCE, "quote": TASKS}  # the whole verbatim sentence
    sent = stub.requests[-1].body
    assert sent["response_format"]["type"] == "json_schema"
    assert "S2: " + TASKS in sent["messages"][1]["content"]

    offline = draft_rules(SOURCE, DOC)
    assert [d.citation["quote"] for d in offline] == [BIG_DEAL]
    merged = merge_drafts(offline, model)
    assert [d.citation["quote"] for d in merged] == [BIG_DEAL, TASKS]
    assert merged[0] is offline[0]


def test_a_model_that_never_answers_json_leaves_the_offline_drafts(stub, llm):
    stub.enqueue("散文，不是 JSON", "还是散文")
    assert llm_rule_drafts(llm, SOURCE, DOC) == []
    stub.enqueue(Fault.server_error(), Fault.server_error())
    assert llm_rule_drafts(llm, SOURCE, DOC) == []


def test_rules_admin_drafts_through_the_configured_model(stub, llm, tmp_path):
    from copilot.agent.rules import RuleStore
    from copilot.features.rules_admin import RulesAdmin

    class Doc:
        path, doc_type, supersedes = SOURCE, "rules", None

    class KB:
        def documents(self):
            return [Doc()]

        def document_text(self, path):
            return DOC

    class NoCRM:
        def list_customers(self, **kw):
            return []

    stub.enqueue({"content": ANSWER})
    admin = RulesAdmin(store=RuleStore(tmp_path / "rules.yaml"), home=tmp_path, kb=lambda: KB(), crm=NoCRM(),
                       facts=lambda s, d: None, llm=lambda: llm)  # fmt: skip
    drafts = admin.draft()
    assert [d["citation"]["quote"] for d in drafts] == [BIG_DEAL, TASKS]
    assert drafts[1]["expression"] == 'tier == "A" and open_tasks > 3' and drafts[1]["preview"]["count"] == 0

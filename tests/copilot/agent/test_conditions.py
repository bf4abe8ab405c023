"""Managers' conditions: the safe expression language, its variables over customer facts, the condition
and commitment rule kinds, and rule drafts read from a company's own rules document."""

from datetime import date

import pytest

from connectors.crm.base import CustomerSnapshot, Opportunity, Purchase, Task, Visit
from copilot.agent.conditions import CATALOGUE, check_condition, compile_condition
from copilot.agent.expression import ExpressionError, parse, truthy
from copilot.agent.facts import Commitment, customer_facts, open_commitments
from copilot.agent.rule_drafts import draft_rules, number
from copilot.agent.rules import RuleStore, parse_rules
from copilot.agent.ruleset import Rule, RulesError, RuleSet
from copilot.agent.triggers import commitment, condition

TODAY = date(2026, 11, 20)
RULES = RuleStore(None).load()


def _customer(**kw) -> CustomerSnapshot:
    base = dict(id="c1", name="北辰市第一人民医院", tier="A", industry="公立医院", owner_user_id="u1")
    return CustomerSnapshot(**{**base, **kw})


def _fires(expression: str, snapshot: CustomerSnapshot, as_of: date = TODAY, commitments=()) -> list[str]:
    rule = Rule("r1", "condition", "escalate", "测试", expression=expression)
    facts = customer_facts(snapshot, (), as_of, commitments=commitments)
    return [t.key for t in condition.evaluate(rule, facts, RULES)]


# -- the language ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '__import__("os").system("id")',
        "opp.__class__",
        "(lambda: 1)()",
        "opp.amount ** 99999",
        "[x for x in opp]",
        "open('/etc/passwd')",
        "tier.upper()",
    ],
)
def test_code_is_refused_with_a_chinese_error(text):
    with pytest.raises(ExpressionError) as err:
        compile_condition(text)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(err.value))


def test_unknown_field_error_suggests_the_close_name():
    with pytest.raises(ExpressionError, match="days_since_visit"):
        compile_condition("days_since_vist > 30")
    assert "语法错误" in (check_condition("tier == ") or "")


def test_chinese_operators_and_missing_values():
    expr = parse("tier == “A” 且 days_since_visit ≥ 21", CATALOGUE)
    assert truthy(expr, {"tier": "A", "days_since_visit": 21})
    assert not truthy(expr, {"tier": "A", "days_since_visit": None})  # no value: never fires
    assert not truthy(parse("opp.amount > 5", CATALOGUE), {"opp": {"amount": "很多"}})  # type clash: false


@pytest.mark.parametrize(
    "text",
    [
        '"a" * 100000000000000 == ""',  # text repeated: would allocate 100 TB (MemoryError, or the OOM killer)
        "tier * 100000000000000 == tier",
        "[1] * 100000000000000 == [1]",
        "memo_competitors * 100000000000000 == []",
    ],
)
def test_repetition_of_text_or_lists_is_refused_without_allocating(text):
    env = {"tier": "A", "memo_competitors": ["竞品甲"]}
    assert truthy(compile_condition(text), env) is False  # a type clash: the rule does not fire


def test_arithmetic_on_numbers_and_joining_text_still_work():
    env = {"opp": {"amount": 600000, "name": "二期"}, "tier": "A", "memo_competitors": ["甲"]}
    assert truthy(compile_condition("opp.amount * 2 - 200000 >= 1000000 / 1"), env)
    assert truthy(compile_condition('tier + "类" == "A类"'), env)
    assert truthy(compile_condition('"甲" in memo_competitors + ["乙"]'), env)


# -- variables over facts -------------------------------------------------------------------------


def test_big_opportunity_without_presales_fires_once_per_open_opportunity():
    c = _customer(
        opportunities=(
            Opportunity("o1", "彩超更新", "方案报价", 1_680_000, custom={"se_assigned": ""}),
            Opportunity("o2", "监护仪", "方案报价", 1_200_000, custom={"se_assigned": "孙工"}),
            Opportunity("o3", "旧单", "赢单", 2_000_000),
        )
    )
    assert _fires("opp.amount > 1000000 and not opp.se_assigned", c) == ["o1"]


def test_quote_without_contact_counts_from_the_last_visit_after_the_quote():
    opp = Opportunity("o1", "监护仪", "方案报价", 420_000, custom={"quote_sent_date": "2026-11-06"})
    assert _fires(
        "opp.quote_days_no_contact > 7", _customer(opportunities=(opp,), visits=(Visit("2026-11-05"),))
    )
    visited = _customer(opportunities=(opp,), visits=(Visit("2026-11-16"),))
    assert not _fires("opp.quote_days_no_contact > 7", visited)
    assert not _fires(
        "opp.quote_days_no_contact > 7", _customer(opportunities=(opp,)), as_of=date(2026, 11, 8)
    )


def test_receivables_overdue_as_of_the_date():
    c = _customer(custom={"receivables": [{"invoice": "INV-1", "amount": 260000, "due": "2026-10-10", "paid": False},
                                          {"invoice": "INV-0", "amount": 9, "due": "2026-01-01", "paid": True}]})  # fmt: skip
    assert _fires("receivable_overdue_days > 30", c)  # 41 days
    assert not _fires("receivable_overdue_days > 30", c, as_of=date(2026, 11, 1))  # 22 days


def test_a_record_in_a_custom_field_is_read_one_level_down_and_cited_at_its_field():
    from copilot.agent.conditions import custom_source

    pilot = {"status": "进行中", "start": "2026-10-20", "last_feedback": "2026-11-01"}
    c = _customer(custom={"pilot": pilot, "site_survey_done": True})
    rule = 'custom.pilot_status == "进行中" and days_since(custom.pilot_last_feedback) > 14'
    assert _fires(rule, c)  # 19 days without feedback
    assert not _fires(rule, c, as_of=date(2026, 11, 10))  # 9 days
    assert not _fires(rule, _customer(custom={"pilot": {**pilot, "status": "已结束"}}))
    assert custom_source(c.custom, "pilot_last_feedback") == "pilot"
    assert custom_source(c.custom, "site_survey_done") == "site_survey_done"


def test_months_declining_and_per_tier_cadence():
    c = _customer(
        tier="B",
        visits=(Visit("2026-10-01"),),
        purchases=tuple(
            Purchase(m, a) for m, a in [("2026-08", 200000), ("2026-09", 155000), ("2026-10", 118000)]
        ),
    )
    assert _fires("months_declining(20) >= 2", c)
    assert not _fires("months_declining(25) >= 2", c)
    cadence = '(tier == "A" and days_since_visit > 21) or (tier == "B" and days_since_visit > 45)'
    assert _fires(cadence, c)  # 50 days > 45
    assert not _fires(cadence, c, as_of=date(2026, 11, 10))  # 40 days


def test_commitments_covered_by_a_crm_task_or_a_sent_quote_are_not_open():
    memo = Commitment(
        "memo", "m1", 3, "把 PACS 和 HIS 的接口文档发给孟主任", date(2026, 11, 20), date(2026, 11, 16)
    )
    other = Commitment(
        "memo", "m1", 4, "安排售前跟信息科开个对接评审会", date(2026, 11, 25), date(2026, 11, 16)
    )
    quote = Commitment(
        "visit", "2026-11-05", 0, "明天把正式报价发给潘经理", date(2026, 11, 6), date(2026, 11, 5)
    )
    c = _customer(
        tasks=(Task("t1", "发送 PACS/HIS 接口文档给孟主任", "2026-11-16", "2026-11-20"),),
        opportunities=(Opportunity("o1", "监护仪", "方案报价", 1, custom={"quote_sent_date": "2026-11-06"}),),
    )
    facts = customer_facts(c, (), TODAY, commitments=(memo, other, quote))
    assert [x.action for x in open_commitments(facts)] == [other.action]
    fired = commitment.evaluate(Rule("commitment", "commitment", "other", "承诺"), facts, RULES)
    assert len(fired) == 1 and commitment.action_for(other.action) == "involve_expert"


def test_overdue_commitment_is_a_task_for_conditions():
    late = Commitment("memo", "m1", 2, "把五年 TCO 明细发给邹科长", date(2026, 11, 11), date(2026, 11, 9))
    assert _fires("task.overdue_days > 3", _customer(), commitments=(late,))  # 9 days late
    assert not _fires("task.overdue_days > 10", _customer(), commitments=(late,))


# -- rules file and drafts ------------------------------------------------------------------------


def test_rules_file_rejects_a_bad_condition_in_chinese():
    bad = {"rules": [{"id": "r", "action_type": "escalate", "expression": "opp.amount >> 3"}]}
    with pytest.raises(RulesError, match="规则 r 的条件有误"):
        parse_rules(bad)
    ok = parse_rules(
        {"rules": [{"id": "r", "action_type": "escalate", "expression": "receivable_overdue_days > 30"}]}
    )
    assert isinstance(ok, RuleSet) and ok.rules[0].kind == "condition"


POLICY = """# 客户跟进制度

版本日期：2026-03-01

## 2. 拜访
A 类医院每21天至少拜访一次，B 类医院每45天至少拜访一次，C 类医院每90天至少拜访一次。

报价发出后7天内未与客户再次联系的，销售代表须跟进报价。单笔商机金额超过100万元的，须有临床应用专家（售前）参与。
商机在同一阶段停留超过六十天的，须升级至销售经理。回款逾期超过30天的，须升级至销售经理。
经销商的耗材月采购额连续两个月环比下降超过20%的，须安排关怀拜访。合同到期前60天内，须安排续约拜访。
承诺事项逾期超过3天未完成的，须报销售经理。客户提出价格异议时，须发送 TCO 话术。客户提到竞品时，须使用攻防卡。
"""


def test_drafts_carry_the_threshold_the_action_and_the_source_sentence():
    drafts = {d.topic: d for d in draft_rules("rules/policy.md", POLICY)}
    assert drafts["visit_cadence"].expression == (
        '(tier == "A" and days_since_visit > 21) or (tier == "B" and days_since_visit > 45) '
        'or (tier == "C" and days_since_visit > 90)'
    )
    assert drafts["quote"].expression == "opp.quote_days_no_contact > 7"
    assert drafts["big_deal"].expression == "opp.amount > 1000000 and not opp.se_assigned"
    assert (drafts["stage_stall"].expression, drafts["stage_stall"].action_type) == (
        "opp.days_in_stage > 60",
        "escalate",
    )
    assert drafts["receivable"].expression == "receivable_overdue_days > 30"
    assert (drafts["purchase_decline"].expression, drafts["purchase_decline"].action_type) == (
        "months_declining(20) >= 2", "care_task")  # fmt: skip
    assert drafts["renewal"].action_type == "schedule_visit"
    assert (drafts["overdue_escalate"].expression, drafts["overdue_escalate"].action_type) == (
        "task.overdue_days > 3", "escalate")  # fmt: skip
    assert drafts["objection:价格"].preset == "price_objection"
    assert drafts["competitor"].preset == "competitor"
    for d in drafts.values():
        assert d.citation["quote"] in POLICY and check_condition(d.expression) is None
    assert number("四十五") == 45 and number("两") == 2


def test_rule_draft_eval_needs_action_thresholds_and_fields():
    from evals.rule_drafts import run_rule_drafts

    gold = [{"id": "stall", "action_type": "escalate", "thresholds": [60], "mentions": ["days_in_stage"]},
            {"id": "quote", "action_type": "follow_up_quote", "thresholds": [7], "mentions": ["quote"]}]  # fmt: skip
    drafts = [d.to_json() for d in draft_rules("rules/policy.md", POLICY)]
    assert run_rule_drafts(gold, drafts)["recall"] == 1.0
    wrong = [{"expression": "opp.days_in_stage > 45", "action_type": "escalate"}]
    assert run_rule_drafts(gold, wrong) == {"n_rules": 2, "found": 0, "recall": 0.0, "n_drafts": 1,
                                            "precision": 0.0, "missed": ["stall", "quote"]}  # fmt: skip


def test_drafts_read_each_companys_own_wording():
    doc = "\n".join([
        "A 级客户相邻两次拜访最多隔20天，B 级35天。",
        "合同金额达到80万元的商机，要由事业部经理指派售前顾问负责需求调研。",
        "订阅费、实施费或硬件款逾期超过45天仍未到账的，必须报事业部经理。",
        "过了截止日期超过4天还没办完的，报事业部经理。",
        "月结算金额连续两个月比上月降幅超过15%的，建关怀任务。",
        "校方嫌价格高时，发送价格话术。",
        "校方提到其他厂商时，准备竞品材料。",
    ])  # fmt: skip
    drafts = {d.topic: d for d in draft_rules("rules/规则.md", doc)}
    assert (
        drafts["visit_cadence"].expression
        == '(tier == "A" and days_since_visit > 20) or (tier == "B" and days_since_visit > 35)'
    )
    assert drafts["big_deal"].expression == "opp.amount > 800000 and not opp.se_assigned"
    assert (drafts["receivable"].expression, drafts["receivable"].action_type) == (
        "receivable_overdue_days > 45",
        "escalate",
    )
    assert (drafts["overdue_escalate"].expression, drafts["overdue_escalate"].action_type) == (
        "task.overdue_days > 4",
        "escalate",
    )
    assert drafts["purchase_decline"].expression == "months_declining(15) >= 2"
    assert (
        drafts["objection:价格"].preset == "price_objection" and drafts["competitor"].preset == "competitor"
    )


def test_presales_and_contract_end_under_a_companys_own_field_names():
    opp = Opportunity("o1", "二期", "方案报价", 3_280_000, stage_entered="2026-10-16",
                      custom={"presales_consultant": "周启明"})  # fmt: skip
    assert not _fires("opp.amount > 800000 and not opp.se_assigned", _customer(opportunities=[opp]))
    unassigned = Opportunity("o2", "三期", "方案报价", 3_280_000, stage_entered="2026-10-16")
    assert _fires("opp.amount > 800000 and not opp.se_assigned", _customer(opportunities=[unassigned]))
    renewal = "days_to_contract_end >= 0 and days_to_contract_end <= 90"
    assert _fires(renewal, _customer(custom={"maintenance_contract_end": "2027-01-31"}))  # 72 days
    assert not _fires(renewal, _customer(custom={"maintenance_contract_end": "2027-06-30"}))

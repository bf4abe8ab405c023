"""Rules over facts as of a date: cadence, purchase trend, stage stall, overdue tasks, situations."""

from datetime import date

import pytest

from connectors.crm.base import CustomerSnapshot, Opportunity, Purchase, StageEntry, Task, Visit
from copilot.agent.facts import MemoView, Segment, customer_facts, snapshot_as_of
from copilot.agent.rules import RuleStore, load_rules_text, parse_rules
from copilot.agent.ruleset import RulesError
from copilot.agent.triggers import evaluate

RULES = RuleStore(None).load()


def _customer(**kw) -> CustomerSnapshot:
    base = dict(id="c1", name="华星电子科技（苏州）有限公司", tier="A", industry="制造业", owner_user_id="u1")
    return CustomerSnapshot(**{**base, **kw})


def _fired(snapshot, as_of, memos=()):
    return {(t.rule.id, t.key) for t in evaluate(RULES, customer_facts(snapshot, memos, as_of))}


def test_visit_cadence_uses_the_tier_and_ignores_visits_after_as_of():
    c = _customer(visits=(Visit("2026-09-08"), Visit("2026-11-25")))
    assert ("visit_cadence", "A") in _fired(
        c, date(2026, 11, 20)
    )  # 73 days; the 11-25 visit is in the future
    assert ("visit_cadence", "A") not in _fired(c, date(2026, 10, 1))
    assert ("visit_cadence", "C") not in _fired(
        _customer(tier="C", visits=(Visit("2026-08-30"),)), date(2026, 11, 20)
    )


def test_purchase_decline_needs_three_consecutive_drops_over_the_threshold():
    months = [
        ("2026-06", 123000),
        ("2026-07", 122500),
        ("2026-08", 101000),
        ("2026-09", 83500),
        ("2026-10", 69800),
    ]
    c = _customer(purchases=tuple(Purchase(m, a) for m, a in months))
    assert ("purchase_decline", "2026-10") in _fired(c, date(2026, 11, 20))
    assert not any(r == "purchase_decline" for r, _ in _fired(c, date(2026, 9, 15)))  # only August complete
    mild = _customer(
        purchases=(
            Purchase("2026-07", 100),
            Purchase("2026-08", 90),
            Purchase("2026-09", 80),
            Purchase("2026-10", 70),
        )
    )
    assert not any(r == "purchase_decline" for r, _ in _fired(mild, date(2026, 11, 20)))  # -10%, -11%, -12.5%


def test_stage_stall_counts_days_in_the_stage_as_of_and_skips_closed_deals():
    opp = Opportunity("o1", "二期", "商务谈判", stage_entered="2026-09-29",
                      stage_history=(StageEntry("方案报价", "2026-08-03"), StageEntry("商务谈判", "2026-09-29")))  # fmt: skip
    won = Opportunity(
        "o2", "一期", "赢单", stage_entered="2025-06-27", stage_history=(StageEntry("赢单", "2025-06-27"),)
    )
    c = _customer(opportunities=(opp, won), visits=(Visit("2026-11-19"),))
    assert _fired(c, date(2026, 11, 20)) == {("stage_stall", "o1")}
    assert not any(r == "stage_stall" for r, _ in _fired(c, date(2026, 11, 1)))  # 33 days
    assert snapshot_as_of(c, date(2026, 9, 1)).opportunities[0].stage == "方案报价"


def test_an_overdue_committed_task_fires_follow_up_quote_when_it_is_about_a_quote():
    tasks = (Task("t1", "发送正式报价单", created="2026-10-15", due="2026-11-10"), Task("t2", "回电话", due="2026-11-01"),
             Task("t3", "寄备件", due="2026-09-12", status="done", completed="2026-09-10"))  # fmt: skip
    facts = customer_facts(_customer(tasks=tasks, visits=(Visit("2026-11-19"),)), (), date(2026, 11, 20))
    fired = {t.key: t.data["action_type"] for t in evaluate(RULES, facts) if t.rule.id == "overdue_task"}
    assert fired == {"t1": "follow_up_quote", "t2": "other"}
    assert not customer_facts(_customer(tasks=tasks), (), date(2026, 11, 5)).overdue_tasks()[1:]


def test_objections_and_competitors_come_from_the_latest_memo_only():
    old = MemoView("m_old", date(2026, 9, 1), "", (Segment(0, 5, "交付要多久？"),))
    new = MemoView(
        "m_new",
        date(2026, 11, 12),
        "",
        (Segment(0, 5, "曹总说太贵了，智云科技便宜十万。"), Segment(5, 9, "问能不能打八五折。")),
    )
    c = _customer(visits=(Visit("2026-11-12"),))
    fired = _fired(c, date(2026, 11, 20), [old, new])
    assert {("price_objection", "价格"), ("discount_request", "A")} <= fired
    assert not any(r == "delivery_objection" for r, _ in fired)
    # the competitor is known from a battlecard title passed in by the caller
    facts = customer_facts(c, [old, new], date(2026, 11, 20), competitors=["智云科技"])
    assert ("competitor", "智云科技") in {(t.rule.id, t.key) for t in evaluate(RULES, facts)}
    # …and a memo recorded after as_of is ignored
    assert not any(r == "price_objection" for r, _ in _fired(c, date(2026, 11, 1), [old, new]))


def test_invalid_rules_are_rejected_with_a_chinese_message(tmp_path):
    with pytest.raises(RulesError, match="kind"):
        parse_rules({"rules": [{"id": "x", "kind": "magic", "action_type": "other"}]})
    with pytest.raises(RulesError, match="action_type"):
        parse_rules({"rules": [{"id": "x", "kind": "visit_cadence", "action_type": "win_deal"}]})
    with pytest.raises(RulesError):
        load_rules_text("rules: [")
    store = RuleStore(tmp_path / "rules.yaml")
    data = store.load().to_json()
    data["rules"][0]["params"]["cadence_days"]["A"] = 7
    store.save(data)
    assert store.load().rules[0].params["cadence_days"]["A"] == 7
    c = _customer(visits=(Visit("2026-11-10"),))
    assert evaluate(store.load(), customer_facts(c, (), date(2026, 11, 20)))


def test_a_team_rule_fires_only_for_that_teams_customers_and_round_trips(tmp_path):
    text = """rules:
  - {id: everyone, kind: condition, expression: 'tier == "A"', action_type: other}
  - {id: team_a, kind: condition, expression: 'tier == "A"', action_type: escalate, team_id: t_a}
"""
    store = RuleStore(tmp_path / "rules.yaml")
    store.save(text)
    ruleset = store.load()
    assert [r.team_id for r in ruleset.rules] == [None, "t_a"]
    c = _customer()
    day = date(2026, 11, 20)

    def fired(team):
        return {t.rule.id for t in evaluate(ruleset, customer_facts(c, (), day, team_id=team))}

    assert fired("t_a") == {"everyone", "team_a"}
    assert fired("t_b") == fired(None) == {"everyone"}  # another team, or an owner without a team
    saved = store.save(ruleset.to_json()).to_json()["rules"]
    assert "team_id" not in saved[0] and saved[1]["team_id"] == "t_a"  # company-wide rules stay unscoped
    with pytest.raises(RulesError, match="team_id"):
        parse_rules({"rules": [{"id": "x", "kind": "visit_cadence", "action_type": "other", "team_id": 7}]})

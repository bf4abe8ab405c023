"""Extraction metric arithmetic on tiny hand-computed cases (evals/extraction.py)."""

from __future__ import annotations

import pytest

from evals.extraction import f1, match_pairs, score_memos, similarity, texts_match


def test_similarity_accepts_a_clause_around_the_gold_phrase_but_not_a_whole_paragraph():
    assert texts_match("报价四十六万八，太贵了", "你们这个报价四十六万八太贵了")
    assert not texts_match("太贵了", "曹总原话是你们这个报价四十六万八太贵了智云那边便宜十万")
    assert similarity("智云", "智云科技") == pytest.approx(0.583, abs=0.01)  # contained, half the length
    assert similarity("", "任何") == 0.0


def test_matching_is_one_to_one():
    assert match_pairs(["价格太贵"], ["价格太贵", "价格太贵了"], similarity) == [(0, 0)]


def test_f1_edge_cases():
    assert f1(0, 0, 0) == 1.0
    assert f1(1, 2, 2) == 0.5
    assert f1(0, 3, 0) == 0.0


def test_score_memos_by_hand():
    gold = [
        {"needs": ["停机预警提前四十八小时"], "objections": [{"type": "价格", "text": "报价太贵"}],
         "competitors": ["智云科技"], "next_steps": [{"action": "发送报价单", "due": "2026-11-16", "owner": "我"}],
         "sentiment": "中性", "stage_hint": "商务谈判"},
        {"needs": [], "objections": [{"type": "交付", "text": "交期太长"}], "competitors": [],
         "next_steps": [{"action": "约技术交流", "due": None, "owner": "我"}], "sentiment": "积极", "stage_hint": "线索"},
    ]  # fmt: skip
    pred = [
        {"needs": ["停机预警提前四十八小时", "想要报表"], "objections": [{"type": "竞品", "text": "报价太贵"}],
         "competitors": ["智云科技"], "next_steps": [{"action": "发送报价单", "due": "2026-11-17", "owner": "我"}],
         "sentiment": "中性", "stage_hint": "方案报价"},
        {"needs": [], "objections": [{"type": "交付", "text": "交期太长了"}], "competitors": ["海拓物联"],
         "next_steps": [{"action": "约技术交流", "due": None, "owner": "客户"}], "sentiment": "消极", "stage_hint": "线索"},
    ]  # fmt: skip
    result = score_memos(gold, pred)
    assert result == {
        "n": 2,
        "f1": {
            "needs": 0.6667,
            "objections": 1.0,
            "competitors": 0.6667,
            "next_steps": 0.5,
        },  # wrong due: no match
        "objection_type_accuracy": 0.5,
        "sentiment_accuracy": 0.5,
        "stage_accuracy": 0.5,
    }

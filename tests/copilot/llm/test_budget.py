"""Prompt budgets (unit + property): estimates err high, trimming keeps verbatim prefixes, fit fits."""

from hypothesis import given
from hypothesis import strategies as st

from copilot.infra.llm.budget import estimate_tokens, fit, trim_text

zh = st.text(alphabet=st.sampled_from("价格客户预算总成本。，；abc 12"), min_size=0, max_size=400)


def test_a_chinese_character_counts_one_token_and_latin_text_about_a_third():
    assert estimate_tokens("客户嫌贵") == 4
    assert estimate_tokens("price objection") == 5  # 15 chars / 3.5, rounded up
    assert estimate_tokens("") == 0


def test_trimming_ends_at_a_sentence_when_one_is_near():
    text = "第一句话讲价值。第二句话讲成本。第三句话讲服务和售后的细节安排"
    assert trim_text(text, 100) == text
    assert trim_text(text, 18) == "第一句话讲价值。第二句话讲成本。"


@given(zh, st.integers(min_value=1, max_value=200))
def test_a_trimmed_text_is_a_prefix_of_the_source_within_the_budget(text, budget):
    out = trim_text(text, budget)
    assert text.startswith(out.rstrip()) or text.rstrip().startswith(out)
    assert estimate_tokens(out) <= budget


@given(st.lists(zh, min_size=1, max_size=8), st.integers(min_value=0, max_value=1500))
def test_fit_keeps_priority_order_and_stays_within_the_budget(texts, budget):
    kept = fit(texts, budget, min_tokens=20)
    assert len(kept) == len(texts)
    shown = [k for k in kept if k is not None]
    if len(shown) > 1 or sum(estimate_tokens(t) for t in texts) <= budget:
        assert sum(estimate_tokens(k) for k in shown) <= budget
    # a dropped item is never followed by a kept one: the lowest priorities go first
    first_drop = next((i for i, k in enumerate(kept) if k is None), len(kept))
    assert all(k is None for k in kept[first_drop:])
    assert all(
        texts[i].startswith(k.rstrip()) or texts[i].rstrip().startswith(k) for i, k in enumerate(kept) if k
    )


def test_short_items_stay_whole_and_long_ones_share_the_rest():
    short, long_a, long_b = "短资料。" * 5, "甲" * 500, "乙" * 500
    kept = fit([long_a, short, long_b], 420, min_tokens=40)
    assert kept[1] == short
    assert len(kept[0]) == len(kept[2]) == 200  # (420 - 20) / 2 each


def test_the_lowest_priority_items_are_dropped_when_the_shares_get_too_small():
    kept = fit(["甲" * 300, "乙" * 300, "丙" * 300], 100, min_tokens=40)
    assert kept[0] and kept[1] and kept[2] is None
    assert fit(["甲" * 300], 10, min_tokens=40) == ["甲" * 10]  # the first item is trimmed, never dropped

"""The citation validator (unit + property): only quotes found in evidence given this turn survive."""

from hypothesis import given
from hypothesis import strategies as st

from copilot.agent.citations import (
    ClaimedCitation,
    Evidence,
    crm_label,
    memo_label,
    memo_locator,
    short_name,
    squash,
    validate,
    verify,
)

TEXT = "商机「二期」（o_1）：当前阶段 商务谈判，2026-09-29 进入该阶段，截至 2026-11-20 已 52 天"
EV = {
    "E1": Evidence("E1", "crm", "c1.opportunities", "o_1", "c1.opportunities", "依据CRM：华星·商机阶段", TEXT)
}
zh_text = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E40) | st.sampled_from(" ，。0123"),
    min_size=8,
    max_size=80,
)


@given(zh_text, st.data())
def test_a_verbatim_span_is_kept_and_rewritten_to_the_source(text, data):
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i + 1, len(text)))
    quote = text[i:j]
    ev = {"E1": Evidence("E1", "kb", "ch1", "¶1", "a.md", "依据《A》", text)}
    kept, dropped = validate([ClaimedCitation("E1", quote)], ev)
    if squash(quote):
        assert (
            len(kept) == 1
            and not dropped
            and squash(kept[0].quote) == squash(quote)
            and kept[0].quote in text
        )
    else:
        assert not kept


@given(zh_text, st.data())
def test_a_mutated_quote_is_always_dropped(text, data):
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i + 1, len(text)))
    quote = list(text[i:j])
    k = data.draw(st.integers(0, len(quote) - 1))
    quote[k] = "☃"  # never occurs in the source alphabet
    ev = {"E1": Evidence("E1", "kb", "ch1", "¶1", "a.md", "依据《A》", text)}
    kept, dropped = validate([ClaimedCitation("E1", "".join(quote))], ev)
    assert kept == [] and len(dropped) == 1


@given(st.text(min_size=1, max_size=6).filter(lambda s: s != "E1"))
def test_an_evidence_id_not_given_this_turn_is_dropped(eid):
    kept, dropped = validate([ClaimedCitation(eid, "当前阶段 商务谈判")], EV)
    assert kept == [] and len(dropped) == 1


def test_whitespace_differences_are_tolerated_and_duplicates_collapsed():
    kept, dropped = validate(
        [ClaimedCitation("E1", "当前阶段商务谈判"), ClaimedCitation("E1", "当前阶段 商务谈判")], EV
    )
    assert len(kept) == 1 and kept[0].quote == "当前阶段 商务谈判" and kept[0].kind == "crm"
    assert kept[0].ref == "c1.opportunities" and kept[0].locator == "o_1"


def test_verify_checks_the_stored_source_at_the_locator():
    kept, _ = validate([ClaimedCitation("E1", "已 52 天")], EV)
    store = {("crm", "c1.opportunities", "o_1"): TEXT}
    assert verify(kept[0], lambda k, r, loc: store.get((k, r, loc)))
    assert not verify(kept[0], lambda k, r, loc: None)
    assert not verify(kept[0], lambda k, r, loc: "别的客户的商机")


def test_labels_are_chinese_and_name_the_span():
    assert short_name("华星电子科技（苏州）有限公司") == "华星电子科技"
    assert (
        crm_label("华星电子（苏州）有限公司", "opportunities", "商务谈判，已52天")
        == "依据CRM：华星电子·商机阶段（商务谈判，已52天）"
    )
    assert memo_locator(72.4, 91.0) == "01:12–01:31"
    assert memo_label("memo_17", "01:12–01:31") == "依据拜访录音 memo_17 01:12–01:31"


# -- citations by reference: the model names the evidence, the code picks the verbatim span -----------

from copilot.agent.citations import lead_quote, locate  # noqa: E402

PASSAGE = (
    "客户嫌贵时，先认同客户的感受，不要急于降价。"
    "再用总拥有成本（TCO）算账：三年下来，断电本地存储省下的人工巡检费用就超过了差价。"
    "最后给出同行业案例，请客户的财务一起评估。"
)
KB = {"E1": Evidence("E1", "kb", "ch1", "¶1", "a.md", "依据《价格异议》", PASSAGE)}


def test_an_exact_phrase_is_shown_as_its_whole_sentence():
    assert (
        locate("总拥有成本", PASSAGE)
        == "再用总拥有成本（TCO）算账：三年下来，断电本地存储省下的人工巡检费用就超过了差价。"
    )


def test_a_paraphrased_phrase_is_shown_as_the_best_aligned_sentence():
    assert locate("先认同客户感受，别急着降价", PASSAGE) == "客户嫌贵时，先认同客户的感受，不要急于降价。"
    assert locate("给同行业的案例让财务评估", PASSAGE) == "最后给出同行业案例，请客户的财务一起评估。"


def test_a_phrase_that_aligns_with_nothing_falls_back_to_the_evidence_best_quote():
    assert locate("直接打五折成交", PASSAGE) is None
    kept, dropped = validate([ClaimedCitation("E1", phrase="直接打五折成交")], KB)
    assert not dropped and kept[0].quote == lead_quote(PASSAGE) and kept[0].quote in PASSAGE


def test_an_id_alone_cites_the_evidence_best_quote_and_a_caller_may_choose_it():
    kept, _ = validate([ClaimedCitation("E1")], KB, fallback=lambda e: "不要急于降价")
    assert kept[0].quote == "不要急于降价"
    kept, _ = validate([ClaimedCitation("E1")], KB)
    assert kept[0].quote == lead_quote(PASSAGE)


def test_a_claimed_quote_is_still_checked_and_an_unknown_id_still_dropped():
    kept, dropped = validate(
        [
            ClaimedCitation("E1", "我们承诺五折", phrase="总拥有成本"),
            ClaimedCitation("E7", phrase="总拥有成本"),
        ],
        KB,
    )
    assert kept == [] and len(dropped) == 2


def test_the_lead_quote_is_sentence_bounded_and_verbatim():
    long = "第一句很短。" + "第二句" * 60 + "。第三句。"
    assert lead_quote(long) == "第一句很短。"
    assert lead_quote("一" * 400) == "一" * 160


@given(zh_text, st.text(min_size=0, max_size=12), st.sampled_from(["kb", "crm", "memo"]))
def test_a_citation_by_reference_always_shows_a_verbatim_span_of_its_evidence(text, phrase, kind):
    ev = {"E1": Evidence("E1", kind, "r", "l", "s", "依据", text)}
    kept, _ = validate([ClaimedCitation("E1", phrase=phrase)], ev)
    for c in kept:
        assert c.quote and c.quote in text


def test_a_stub_sentence_is_shown_with_the_sentence_after_it():
    row = "场景标签：价格异议。先认同客户的感受，再算三年总拥有成本。"
    assert locate("场景标签：价格异议", row) == row


def test_the_sentence_an_answer_uses_most_is_found_verbatim():
    from copilot.agent.citations import supported_span

    answer = "建议先和客户算三年总拥有成本，三年下来断电本地存储省下的巡检费用超过差价。"
    assert (
        supported_span(answer, PASSAGE)
        == "再用总拥有成本（TCO）算账：三年下来，断电本地存储省下的人工巡检费用就超过了差价。"
    )
    assert supported_span("明天去拜访王总。", PASSAGE) is None

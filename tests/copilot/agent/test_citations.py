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

"""Objection typing by nearest prototype with the real bundled embedder: it types the concerns the
lexicons leave as 其他, keeps 其他 when unsure, breaks ties between lexicons, and is optional."""

from __future__ import annotations

from datetime import datetime

import pytest

from copilot.voice.extract import extract_offline, extract_visit
from copilot.voice.extract.embed import PrototypeTyper, typer_for
from copilot.voice.extract.offline import _objection_type
from copilot.voice.transcribe import Segment

pytestmark = pytest.mark.models

RECORDED = datetime.fromisoformat("2026-11-12T16:40:00+08:00")


@pytest.fixture(scope="module")
def typer(embedder) -> PrototypeTyper:
    return typer_for(embedder)


@pytest.mark.parametrize(("clause", "expected"), [("担心坏了以后找谁修", "服务"), ("对这个价不认可", "价格")])
def test_concerns_the_lexicons_leave_untyped_get_the_nearest_type(typer, clause, expected):
    assert _objection_type(clause, []) == "其他"  # what the lexicons alone say
    assert typer.classify(clause) == expected
    assert _objection_type(clause, [], typer) == expected


@pytest.mark.parametrize("clause", ["担心厂里工人不会用", "对我们公司规模太小不放心"])
def test_a_concern_no_type_is_confident_about_stays_other(typer, clause):
    assert typer.classify(clause) is None
    assert _objection_type(clause, [], typer) == "其他"


def test_the_embedding_breaks_a_tie_between_two_lexicons(typer):
    clause = "便宜点的话还是担心兼容"  # 便宜 (价格) and 兼容 (技术) both match
    assert _objection_type(clause, []) == "价格"  # lexicon order alone
    assert _objection_type(clause, [], typer) == "技术"
    assert typer.pick(clause, ["价格", "技术"]) == "技术"


def test_prototypes_are_embedded_once_per_embedder(embedder, typer):
    assert typer_for(embedder) is typer
    typer.classify("对这个价不认可")
    first = typer._prototypes()
    typer.classify("担心坏了以后找谁修")
    assert typer._prototypes() is first
    assert typer_for(None) is None


def test_the_offline_extractor_uses_the_embedder_when_given_and_works_without(embedder):
    segments = [
        Segment(0.0, 4.0, "今天见了采购，采购对这个价不认可。"),
        Segment(4.4, 8.0, "我明天把新报价发过去。"),
    ]
    without = extract_offline(segments, recorded_at=RECORDED)
    with_model = extract_offline(segments, recorded_at=RECORDED, embedder=embedder)
    assert [(o.type, o.text) for o in without.objections] == [("其他", "采购对这个价不认可")]
    assert [(o.type, o.text) for o in with_model.objections] == [("价格", "采购对这个价不认可")]
    assert with_model.objections[0].sources == without.objections[0].sources
    assert with_model.next_steps == without.next_steps
    # The facade passes it through (no LLM configured → offline).
    assert extract_visit(segments, recorded_at=RECORDED, embedder=embedder).objections[0].type == "价格"

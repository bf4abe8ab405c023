"""Visit-record extraction: offline rules against a CRM context, and the LLM path through the
OpenAI-compatible stub on 127.0.0.1 (validation, segment references, fallbacks)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from connectors.crm.base import Contact, CustomerSnapshot, Opportunity
from copilot.infra.llm.chat_model import OpenAICompatibleChat
from copilot.voice.extract import (
    ExtractionContext,
    company_aliases,
    extract_offline,
    extract_visit,
    script_segments,
)
from copilot.voice.transcribe import Segment
from evals.extraction import read_memos, run_extraction
from tests.fakes.openai_stub import Fault, OpenAIStub

RECORDED = datetime.fromisoformat("2026-11-12T16:40:00+08:00")  # a Thursday
DATASET = Path(__file__).resolve().parents[3] / "evals" / "datasets" / "memos.jsonl"

RENKANG = CustomerSnapshot(
    id="c_renkang",
    name="仁康医药连锁股份有限公司",
    owner_user_id="u_rep_wang",
    contacts=(
        Contact("黄丽华", "质量负责人（QA 总监）", False),
        Contact("许斌", "信息部经理", False),
        Contact("曹志强", "副总经理", True),
    ),
    opportunities=(Opportunity("o_rk", "仁康门店温湿度监测", "商务谈判", competitors=("智云科技",)),),
)
OTHER = CustomerSnapshot(
    id="c_huaxing",
    name="华星电子科技（苏州）有限公司",
    contacts=(Contact("吴昊", "设备部部长"),),
    opportunities=(Opportunity("o_hx", "华星二期", "商务谈判", competitors=("海拓物联",)),),
)

SEGMENTS = (
    Segment(0.0, 4.5, "好，我简单记一下今天在仁康这边的情况。"),
    Segment(4.9, 11.6, "今天见了黄总监和曹总，主要就是谈价格。"),
    Segment(12.0, 23.0, "曹总原话是，你们这个报价四十六万八，太贵了，智云那边给的报价才三十七万出头。"),
    Segment(23.4, 31.5, "黄总监希望门店断电的时候数据也不能断档，GSP 审计要连续记录。"),
    Segment(31.9, 40.0, "但是曹总说价格要降，不然他那边过不了董事会。"),
    Segment(40.4, 52.0, "下一步，下周一之前把 TCO 测算发给黄总监，然后约曹总再见一次。"),
)


def context(customer_id: str | None = "c_renkang") -> ExtractionContext:
    return ExtractionContext.from_snapshots([RENKANG, OTHER], customer_id=customer_id)


def cited_text(item: dict, segments=SEGMENTS) -> str:
    return "".join(segments[s["segment"]].text for s in item["segments"])


def squash(text: str) -> str:
    return re.sub(r"\W", "", text)


# -- offline -------------------------------------------------------------------------------------


def test_offline_record_has_typed_objections_competitor_alias_and_resolved_due_dates():
    record = extract_offline(SEGMENTS, recorded_at=RECORDED, context=context()).to_json()

    assert record["mode"] == "offline"
    assert record["customer"]["id"] == "c_renkang" and record["customer"]["mentioned_as"] == "仁康"
    assert {c["name"] for c in record["contacts"]} >= {"黄丽华", "曹志强"}
    assert [(c["name"], c["mentioned_as"], c["known"]) for c in record["competitors"]] == [
        ("智云科技", "智云", True)
    ]
    types = {o["type"] for o in record["objections"]}
    assert {"价格", "决策流程"} <= types
    assert any("断档" in n["text"] for n in record["needs"])
    steps = {s["due"]: s for s in record["next_steps"]}
    assert steps["2026-11-16"]["owner"] == "我" and "TCO" in steps["2026-11-16"]["action"]
    assert steps["2026-11-16"]["due_phrase"] == "下周一之前"
    assert any("约曹总" in s["action"] and s["due"] is None for s in record["next_steps"])
    assert record["stage_hint"]["value"] == "商务谈判"


def test_every_extracted_item_points_at_the_segment_that_says_it():
    record = extract_offline(SEGMENTS, recorded_at=RECORDED, context=context()).to_json()
    items = record["needs"] + record["objections"] + record["next_steps"]
    assert items
    for item in items:
        text = item.get("text") or item.get("action")
        assert item["segments"], item
        assert squash(text)[:6] in squash(cited_text(item)), item
        for ref in item["segments"]:
            seg = SEGMENTS[ref["segment"]]
            assert (ref["start"], ref["end"]) == (seg.start, seg.end)
            assert re.fullmatch(r"\d\d:\d\d–\d\d:\d\d", ref["locator"])
    for comp in record["competitors"]:
        assert comp["mentioned_as"] in cited_text(comp)


def test_the_rep_answering_an_objection_is_not_a_customer_objection():
    segs = (Segment(0, 5, "我跟他解释了我们的价格包含三年维保。"), Segment(5, 9, "客户担心价格太贵。"))
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    assert [o["segments"][0]["segment"] for o in record["objections"]] == [1]


def test_without_crm_context_unknown_competitors_are_found_by_their_cue_and_marked_unknown():
    segs = (Segment(0, 6, "他们问我们跟西门子的方案比有什么优势。"),)
    record = extract_offline(segs, recorded_at=RECORDED, context=ExtractionContext()).to_json()
    assert [(c["name"], c["known"]) for c in record["competitors"]] == [("西门子", False)]


def test_an_unknown_brand_beside_a_price_comparison_is_a_competitor_and_the_comparison_one_objection():
    segs = (Segment(0, 8, "曹总说有个叫蓝鲸物联的公司也来谈过了，报价比我们低不少，让我们再考虑。"),)
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    assert [(c["name"], c["known"]) for c in record["competitors"]] == [("蓝鲸物联", False)]
    assert len(record["objections"]) == 1
    assert "蓝鲸物联" in record["objections"][0]["text"] and "比我们低" in record["objections"][0]["text"]


def test_a_cue_said_not_to_have_come_up_and_the_rest_of_the_reps_sentence_are_not_objections():
    segs = (
        Segment(0, 4, "这次没再提价格太贵的事。"),
        Segment(4, 9, "我说交期没问题，折扣要回去请示。"),
    )
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    assert record["objections"] == []
    assert record["competitors"] == []


def test_the_visit_itself_and_what_the_customer_asked_are_not_the_reps_next_steps():
    segs = (
        Segment(0, 5, "今天去仁康做了现场评审，曹总问能不能明天就出方案。"),
        Segment(5, 10, "我下周一之前把方案发给黄总监，下周三去一趟，当面给曹总演示。"),
    )
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    steps = [(s["due"], s["action"]) for s in record["next_steps"]]
    assert steps == [("2026-11-16", "把方案发给黄总监"), ("2026-11-18", "去一趟，当面给曹总演示")]


def test_a_date_said_after_the_step_is_that_steps_date_and_a_contract_word_is_no_plan():
    segs = (
        Segment(0, 5, "法务那边主要卡在违约责任上。"),
        Segment(5, 10, "我先把演示视频发给黄总监，这个明天就发，再请法务一起开个会，时间定在下周四。"),
    )
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    steps = [(s["due"], s["action"]) for s in record["next_steps"]]
    assert steps == [("2026-11-13", "把演示视频发给黄总监"), ("2026-11-19", "请法务一起开个会")]


def test_fillers_are_not_left_in_the_span():
    segs = (Segment(0, 6, "曹总那个，怎么说呢，抱怨我们去年的售后响应慢，拖了一个月。"),)
    record = extract_offline(segs, recorded_at=RECORDED, context=context()).to_json()
    assert record["objections"] and "那个" not in record["objections"][0]["text"]
    assert not record["objections"][0]["text"].startswith("个")


def test_offline_extractor_says_what_it_could_not_find():
    segs = (Segment(0, 3, "嗯，今天天气不错。"),)
    record = extract_offline(segs, recorded_at=RECORDED, context=ExtractionContext()).to_json()
    assert record["needs"] == record["objections"] == record["next_steps"] == []
    assert record["customer"] is None
    missing = "".join(record["missing"])
    assert "客户" in missing and "需求" in missing and "下一步" in missing


def test_crm_stage_is_used_only_when_the_memo_gives_no_stage_cue():
    segs = (Segment(0, 3, "今天路过顺便坐了一下。"),)
    stage = extract_offline(segs, recorded_at=RECORDED, context=context()).stage_hint
    assert stage.value == "商务谈判" and "CRM" in stage.basis


def test_company_aliases_are_how_people_say_the_name():
    assert {"华星电子科技", "华星电子", "华星"} <= set(company_aliases("华星电子科技（苏州）有限公司"))
    assert "仁康" in company_aliases("仁康医药连锁股份有限公司")


def test_hotwords_put_the_customer_and_its_contacts_first():
    words = context().hotwords()
    assert "仁康" in words[:2] and words.index("黄丽华") < words.index("智云科技")


def test_script_segments_split_sentences_with_increasing_times():
    segs = script_segments("第一句。第二句比较长一些！第三句？")
    assert [s.text for s in segs] == ["第一句。", "第二句比较长一些！", "第三句？"]
    assert all(a.end < b.start for a, b in zip(segs, segs[1:], strict=False))


# -- LLM -----------------------------------------------------------------------------------------


@pytest.fixture
def stub():
    with OpenAIStub.running() as s:
        yield s


@pytest.fixture
def llm(stub):
    return OpenAICompatibleChat(base_url=stub.url, api_key="sk-test", model="stub-model", timeout_s=5)


GOOD_ANSWER = {
    "customer": {"name": "仁康", "segments": [0]},
    "contacts": [{"name": "黄总监", "role": "QA 总监", "segments": [1]}],
    "needs": [{"text": "门店断电的时候数据也不能断档", "segments": [3]}],
    "objections": [
        {"type": "价格", "text": "报价四十六万八，太贵了", "segments": [2]},
        {"type": "决策流程", "text": "过不了董事会", "segments": ["S4"]},
    ],
    "competitors": [{"name": "智云科技", "segments": [2]}],
    "next_steps": [
        {
            "action": "把 TCO 测算发给黄总监",
            "owner": "我",
            "due_phrase": "下周一之前",
            "due": "2026-11-16",
            "segments": [5],
        }
    ],
    "sentiment": {"value": "中性", "segments": [4]},
    "stage_hint": {"value": "商务谈判", "segments": [4]},
}


def test_llm_answer_is_validated_and_keeps_its_segment_references(stub, llm):
    stub.enqueue({"content": GOOD_ANSWER})
    record = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm).to_json()

    assert record["mode"] == "llm" and "note" not in record
    assert record["contacts"][0]["name"] == "黄丽华" and record["contacts"][0]["in_crm"]
    assert [o["type"] for o in record["objections"]] == ["价格", "决策流程"]
    assert record["objections"][1]["segments"][0]["segment"] == 4
    assert record["competitors"][0]["mentioned_as"] == "智云"
    assert record["next_steps"][0]["due"] == "2026-11-16"
    sent = stub.requests[-1]
    assert "[S2]" in sent.last_user_message and "<transcript>" in sent.last_user_message
    assert sent.body["response_format"]["type"] == "json_schema"
    schema = sent.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["objections"]["items"]["properties"]["type"]["enum"][0] == "价格"
    assert sent.body["max_tokens"] > 0


def test_a_field_the_model_left_empty_is_filled_from_the_offline_rules_and_the_record_says_so(stub, llm):
    """Measured with a 0.5B local model: needs answered, next steps dropped (F1 0.0) — the rep still
    gets the grounded next steps, marked as coming from the offline rules."""
    stub.enqueue({"content": {**GOOD_ANSWER, "next_steps": []}})
    record = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm).to_json()
    offline = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context()).to_json()

    assert record["mode"] == "llm" and offline["next_steps"]
    assert record["next_steps"] == offline["next_steps"]
    assert record["needs"][0]["text"] == "门店断电的时候数据也不能断档"  # the model's own items stay
    assert "下一步由离线规则补充" in record["note"]


def test_an_answer_of_the_wrong_shape_gets_one_repair_turn_naming_the_error(stub, llm):
    stub.enqueue({"content": {"needs": "不是列表"}}, {"content": GOOD_ANSWER})
    record = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm).to_json()

    assert record["mode"] == "llm" and record["objections"]
    repair = stub.requests[-1].messages
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "needs 不是列表" in repair[-1]["content"]


def test_fallback_reasons_are_recorded_per_path(stub):
    seen = []
    llm = OpenAICompatibleChat(
        base_url=stub.url, api_key="sk-test", model="stub-model", timeout_s=5,
        on_outcome=lambda path, outcome: seen.append((path, outcome)),
    )  # fmt: skip
    stub.enqueue("散文，不是 JSON", "还是散文")
    extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm)
    stub.enqueue({"content": GOOD_ANSWER})
    extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm)

    assert seen == [("extract", "malformed"), ("extract", "accepted")]


def test_llm_items_citing_no_real_segment_or_naming_what_is_not_there_are_dropped(stub, llm):
    answer = json.loads(json.dumps(GOOD_ANSWER))
    answer["needs"].append({"text": "客户要做 ERP 替换", "segments": [42]})  # no such segment
    answer["competitors"].append({"name": "海拓物联", "segments": [2]})  # not said in segment 2
    answer["objections"][0]["type"] = "心情"  # not a type: becomes 其他
    answer["stage_hint"]["value"] = "快成了"  # not a stage
    stub.enqueue({"content": answer})
    record = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm).to_json()

    assert [n["text"] for n in record["needs"]] == ["门店断电的时候数据也不能断档"]
    assert [c["name"] for c in record["competitors"]] == ["智云科技"]
    assert record["objections"][0]["type"] == "其他"
    assert record["stage_hint"]["value"] is None
    assert any("2 条" in m for m in record["missing"])


@pytest.mark.parametrize(
    "reply",
    [
        "好的，这是纪要：客户嫌贵。",  # prose, not JSON
        {"content": ["not", "an", "object"]},
        Fault.server_error(),
        {"content": {"needs": "不是列表"}},
    ],
)
def test_unusable_llm_answers_fall_back_to_the_offline_extractor_with_a_note(stub, llm, reply):
    stub.enqueue(reply, reply)  # the answer and the repair turn (a fault: the call and its retry)
    record = extract_visit(SEGMENTS, recorded_at=RECORDED, context=context(), llm=llm).to_json()
    assert record["mode"] == "offline"
    assert "离线" in record["note"]
    assert record["objections"]


def _gold_answer(row: dict, segments) -> dict:
    """A correct model answer for a dataset memo: the gold fields with the segments that contain them."""

    def refs(text: str) -> list[int]:
        key = squash(text)
        hits = [i for i, s in enumerate(segments) if key and key[:8] in squash(s.text)]
        return hits or [i for i, s in enumerate(segments) if any(ch in s.text for ch in key[:2])][:1]

    return {
        "customer": {"name": row["customer"], "segments": [0]},
        "contacts": [],
        "needs": [{"text": n, "segments": refs(n)} for n in row["needs"]],
        "objections": [
            {"type": o["type"], "text": o["text"], "segments": refs(o["text"])} for o in row["objections"]
        ],
        "competitors": [
            {"name": c, "segments": [i for i, s in enumerate(segments) if c[:2] in s.text]}
            for c in row["competitors"]
        ],
        "next_steps": [
            {
                "action": s["action"],
                "owner": s["owner"],
                "due": s["due"],
                "due_phrase": None,
                "segments": refs(s["action"]),
            }
            for s in row["next_steps"]
        ],
        "sentiment": {"value": row["sentiment"], "segments": [0]},
        "stage_hint": {"value": row["stage_hint"], "segments": [0]},
    }


def test_eval_through_the_stub_replaying_correct_answers_scores_at_least_085(stub, llm):
    """Checks plumbing, validation and segment references end to end (not model quality)."""
    rows = read_memos(DATASET)
    by_prompt: dict[str, dict] = {}

    def extract(row):
        segments = script_segments(row["script"])
        by_prompt[segments[0].text] = _gold_answer(row, segments)
        record = extract_visit(segments, recorded_at=datetime.fromisoformat(row["recorded_at"]), llm=llm)
        assert record.mode == "llm"
        return record.to_eval()

    def model(request):
        first = re.search(r"\[S0\] \S+ (.*)", request.last_user_message).group(1)
        return {"content": by_prompt[first]}

    stub.handler = model
    result = run_extraction(rows, extract=extract)
    assert result["n"] >= 30
    assert min(result["f1"].values()) >= 0.85, result
    assert result["objection_type_accuracy"] >= 0.85 and result["stage_accuracy"] == 1.0


def test_offline_eval_on_the_dataset_meets_the_issue_floor():
    rows = read_memos(DATASET)
    ctx = ExtractionContext()

    def extract(row):
        segs = script_segments(row["script"])
        return extract_offline(
            segs, recorded_at=datetime.fromisoformat(row["recorded_at"]), context=ctx
        ).to_eval()

    # Without any CRM context (the CLI adds it): competitors rely on cues alone, so only the others are held.
    result = run_extraction(rows, extract=extract)
    assert (
        result["f1"]["needs"] >= 0.6
        and result["f1"]["objections"] >= 0.6
        and result["f1"]["next_steps"] >= 0.6
    )

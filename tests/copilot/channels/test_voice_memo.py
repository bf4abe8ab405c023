"""Voice → memo → visit summary + suggestions with buttons; buttons and 「确认 N」 apply exactly once."""

from __future__ import annotations

import time
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from connectors.channels.wecom import build_xml
from copilot.features.channels.render import ASK_CUSTOMER, VOICE_RECEIVED
from copilot.storage import tables as t
from copilot.voice.transcribe import Segment, Transcript
from tests.copilot.channels.conftest import (
    AGENT_ID,
    CORP_ID,
    DING_STAFF,
    ding_headers,
    ding_text,
    wait_jobs,
    wecom_post,
    wecom_text_xml,
    wecom_voice_xml,
)
from tests.copilot.conftest import DATA

AMR = (DATA / "audio" / "speech_nb.amr").read_bytes()
HUAXING = (
    "今天见了华星的张总，对方说我们的报价太贵了，要求打八五折。",
    "智云科技那边报价便宜百分之二十，我下周三之前把折扣申请提交上去。",
)


class ScriptedTranscriber:
    """Stands in for Whisper: the test is about the channel, not recognition."""

    def __init__(self, *texts: str) -> None:
        self.texts = texts

    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        segs = tuple(Segment(i * 4.0, i * 4.0 + 3.5, text) for i, text in enumerate(self.texts))
        return Transcript("".join(self.texts), "zh", len(audio) / 16000, segs, 0.1)


@pytest.fixture
def voice_services(bound_services):
    bound_services.provide("kb", None)  # suggestions from the CRM and the memo; no embedder
    return bound_services


def _tasks(services, customer_id: str = "c_a1") -> list:
    return list(services.crm.get_customer(customer_id).tasks)


def _cards(fake) -> list[dict]:
    return [m["template_card"] for m in fake.sent if m["msgtype"] == "template_card"]


def _button_event(key: str, *, created: int, task_id: str = "task-1") -> str:
    return build_xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": "lilei",
            "CreateTime": created,
            "MsgType": "event",
            "Event": "template_card_event",
            "EventKey": key,
            "TaskId": task_id,
            "CardType": "button_interaction",
            "ResponseCode": "rc-1",
            "AgentID": int(AGENT_ID),
        }
    )


def _voice_to_cards(services, fake, client) -> list[dict]:
    services.provide("transcriber", ScriptedTranscriber(*HUAXING))
    fake.media["MEDIA_V1"] = AMR
    assert wecom_post(client, wecom_voice_xml("MEDIA_V1")).status_code == 200
    wait_jobs(services)
    return _cards(fake)


def test_wecom_voice_becomes_a_memo_visit_summary_and_suggestion_cards(
    voice_services, wecom_fake, client_for
):
    client = client_for(voice_services)
    cards = _voice_to_cards(voice_services, wecom_fake, client)

    texts = wecom_fake.texts()
    assert texts[0] == VOICE_RECEIVED
    summary = next(x for x in texts if x.startswith("拜访纪要"))
    assert "华星电子" in summary and "报价太贵" in summary
    with voice_services.engine.connect() as conn:
        [memo] = conn.execute(
            select(t.memos).where(t.memos.c.user_id == "rep_a", t.memos.c.id != "memo_1")
        ).all()
    assert memo.status == "done" and memo.customer_id == "c_a1"
    assert wecom_fake.media_requests == ["MEDIA_V1"]
    assert cards, wecom_fake.sent
    for card in cards:
        keys = [b["key"] for b in card["button_list"]]
        assert [b["text"] for b in card["button_list"]] == ["采纳", "忽略"]
        assert keys[0].startswith("apply:sg_") and keys[1] == "dismiss:" + keys[0].removeprefix("apply:")


def test_pressing_the_button_twice_creates_one_crm_task(voice_services, wecom_fake, client_for):
    client = client_for(voice_services)
    cards = _voice_to_cards(voice_services, wecom_fake, client)
    card = cards[0]
    sid = card["button_list"][0]["key"].removeprefix("apply:")
    change = voice_services.suggester.store.get(sid).proposed_change
    before = _tasks(voice_services)
    sent_before = len(wecom_fake.sent)

    now = int(time.time())
    event = _button_event(f"apply:{sid}", created=now)
    for _ in range(3):  # WeCom retries the same event
        assert wecom_post(client, event).status_code == 200
    assert (
        wecom_post(client, _button_event(f"apply:{sid}", created=now + 1)).status_code == 200
    )  # pressed again
    wait_jobs(voice_services)

    row = voice_services.suggester.store.get(sid)
    assert row.status == "applied"
    assert change["op"] == "create_task"
    assert len(_tasks(voice_services)) == len(before) + 1
    with voice_services.engine.connect() as conn:
        applied = conn.execute(
            select(t.suggestion_events).where(
                t.suggestion_events.c.suggestion_id == sid, t.suggestion_events.c.event == "applied"
            )
        ).all()
    assert len(applied) == 1
    # the pressed card now reads 已采纳 (one update per processed press, each with its own one-time code)
    assert [u["button"]["replace_name"] for u in wecom_fake.card_updates] == ["已采纳"]
    assert wecom_fake.card_updates[0]["response_code"] == "rc-1"
    assert wecom_fake.card_updates[0]["userids"] == ["lilei"]
    replies = sorted(x[:3] for x in wecom_fake.texts()[-2:])  # the two presses are answered concurrently
    assert len(wecom_fake.sent) == sent_before + 2
    assert replies == ["已采纳", "该建议"]


def test_text_commands_apply_and_dismiss_by_number(voice_services, wecom_fake, client_for):
    client = client_for(voice_services)
    cards = _voice_to_cards(voice_services, wecom_fake, client)
    ids = [c["button_list"][0]["key"].removeprefix("apply:") for c in cards]
    store = voice_services.suggester.store

    wecom_post(client, wecom_text_xml("确认 1", msg_id="7100000000000000001"))
    wecom_post(client, wecom_text_xml("确认 1", msg_id="7100000000000000002"))
    wecom_post(client, wecom_text_xml("忽略 9", msg_id="7100000000000000003"))
    wait_jobs(voice_services)
    assert store.get(ids[0]).status == "applied"
    assert any("没有找到第 9 条建议" in x for x in wecom_fake.texts()[-3:])
    if len(ids) > 1:
        wecom_post(client, wecom_text_xml("忽略 2", msg_id="7100000000000000004"))
        wait_jobs(voice_services)
        assert store.get(ids[1]).status == "dismissed"


def test_confirm_by_number_works_after_a_restart_because_the_numbering_is_stored(
    voice_services, wecom_fake, client_for
):
    cards = _voice_to_cards(voice_services, wecom_fake, client_for(voice_services))
    first = cards[0]["button_list"][0]["key"].removeprefix("apply:")
    voice_services.forget("channels")  # a new process: nothing of the old service in memory
    restarted = client_for(voice_services)

    wecom_post(restarted, wecom_text_xml("确认 1", msg_id="7100000000000000011"))
    wait_jobs(voice_services)

    assert voice_services.suggester.store.get(first).status == "applied"
    assert wecom_fake.texts()[-1].startswith("已采纳")


def test_voice_without_a_known_customer_is_stored_and_the_rep_is_asked(
    voice_services, wecom_fake, client_for
):
    client = client_for(voice_services)
    voice_services.provide("transcriber", ScriptedTranscriber("今天去拜访了一家新客户，聊得不错。"))
    wecom_fake.media["MEDIA_V2"] = AMR
    wecom_post(client, wecom_voice_xml("MEDIA_V2", msg_id="7000000000000000009"))
    wait_jobs(voice_services)

    with voice_services.engine.connect() as conn:
        [memo] = conn.execute(select(t.memos).where(t.memos.c.id != "memo_1")).all()
    assert memo.status == "done" and memo.customer_id is None
    assert wecom_fake.texts()[-1].endswith(ASK_CUSTOMER.format(memo_id=memo.id)[-20:])
    assert _cards(wecom_fake) == []


def test_dingtalk_voice_lists_suggestions_with_confirm_numbers(voice_services, dingtalk_fake):
    from copilot.api.app import create_app

    voice_services.provide("transcriber", ScriptedTranscriber(*HUAXING))
    dingtalk_fake.files["DL1"] = AMR
    body = ding_text(dingtalk_fake, "", msg_id="msgV1", staff=DING_STAFF)
    body.pop("text")
    body.update(msgtype="audio", content={"downloadCode": "DL1", "recognition": "", "duration": 4000})
    with TestClient(create_app(voice_services)) as client:
        assert (
            client.post("/channels/dingtalk/callback", json=body, headers=ding_headers()).status_code == 200
        )
        wait_jobs(voice_services)
    texts = dingtalk_fake.replies()
    assert any(x.startswith("拜访纪要") and "华星电子" in x for x in texts)
    cards = [
        m["body"]["actionCard"] for m in dingtalk_fake.session_sent if m["body"]["msgtype"] == "actionCard"
    ]
    assert cards and cards[0]["title"].startswith("1. ")
    for n, card in enumerate(cards, start=1):
        taps = [
            unquote(b["actionURL"].removeprefix("dtmd://dingtalkclient/sendMessage?content="))
            for b in card["btns"]
        ]
        assert [b["title"] for b in card["btns"]] == ["采纳", "忽略"] and taps == [f"确认 {n}", f"忽略 {n}"]

    # tapping 采纳 on the first card sends 「确认 1」 as the rep: the suggestion is applied, once
    store = voice_services.suggester.store
    first = voice_services.channels.decisions.last_shown("dingtalk", DING_STAFF)[0]
    with TestClient(create_app(voice_services)) as client:
        for msg_id in ("msgT1", "msgT1", "msgT2"):  # a platform retry, then a second tap
            tap = ding_text(dingtalk_fake, "确认 1", msg_id=msg_id, staff=DING_STAFF)
            assert (
                client.post("/channels/dingtalk/callback", json=tap, headers=ding_headers()).status_code
                == 200
            )
        wait_jobs(voice_services)
    assert store.get(first).status == "applied"
    assert sorted(x[:3] for x in dingtalk_fake.replies()[-2:]) == ["已采纳", "该建议"]


def test_the_rep_corrects_the_latest_memo_by_replying_with_the_right_text(
    voice_services, wecom_fake, client_for
):
    client = client_for(voice_services)
    _voice_to_cards(voice_services, wecom_fake, client)
    summary = next(x for x in wecom_fake.texts() if x.startswith("拜访纪要"))
    assert "回复「更正：" in summary  # the rep is told how

    fixed = "今天见了华星的张总，对方担心交付周期太长，我周五前把排期表发过去。"
    wecom_post(client, wecom_text_xml(f"更正：{fixed}", msg_id="7400000000000000001"))
    wait_jobs(voice_services)

    reply = wecom_fake.texts()[-1]
    assert reply.startswith("已按您的更正重新整理") and "交付周期" in reply and "八五折" not in reply
    with voice_services.engine.connect() as conn:
        [memo] = conn.execute(
            select(t.memos).where(t.memos.c.user_id == "rep_a", t.memos.c.id != "memo_1")
        ).all()
    assert memo.transcript == fixed and memo.visit_record["corrected_by_rep"] is True
    assert memo.visit_record["transcript_as_heard"].startswith("今天见了华星的张总，对方说我们的报价太贵了")

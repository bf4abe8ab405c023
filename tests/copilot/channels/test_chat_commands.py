"""The same conversation engine behind WeCom and DingTalk: a chat is one conversation, so a request
becomes a proposed change and 「确认」 in the next message writes it to the CRM exactly once."""

from __future__ import annotations

import json

from sqlalchemy import select

from connectors.crm import local_schema as crm_t
from tests.copilot.channels.conftest import (
    ding_headers,
    ding_text,
    wait_jobs,
    wecom_post,
    wecom_text_xml,
)


def _tasks(services):
    with services.engine.connect() as conn:
        return conn.execute(select(crm_t.tasks).where(crm_t.tasks.c.customer_id == "c_a1")).all()


def test_wecom_request_then_confirm_creates_one_task(bound_services, wecom_fake, client_for):
    client = client_for(bound_services)
    before = len(_tasks(bound_services))
    wecom_post(
        client,
        wecom_text_xml("帮我给华星建个任务：下周三前把三年TCO测算发给张总", msg_id="7300000000000000001"),
    )
    wait_jobs(bound_services)
    assert "回复「确认」写入 CRM" in wecom_fake.texts()[-1] and len(_tasks(bound_services)) == before
    for n in (2, 3):  # confirmed twice: written once
        wecom_post(client, wecom_text_xml("确认", msg_id=f"730000000000000000{n}"))
        wait_jobs(bound_services)
    assert wecom_fake.texts()[-2].startswith("已写入 CRM")
    assert wecom_fake.texts()[-1].startswith("当前没有待确认的操作")
    tasks = _tasks(bound_services)
    assert len(tasks) == before + 1 and "TCO测算" in tasks[-1].title


def test_dingtalk_request_then_confirm_creates_one_task(bound_services, dingtalk_fake, client_for):
    client = client_for(bound_services)
    before = len(_tasks(bound_services))
    for msg_id, text in (("dA1", "华星那边帮我建个任务：周五前回访张总"), ("dA2", "好的，建吧")):
        raw = json.dumps(ding_text(dingtalk_fake, text, msg_id=msg_id), ensure_ascii=False).encode()
        client.post("/channels/dingtalk/callback", content=raw, headers=ding_headers())
        wait_jobs(bound_services)
    replies = dingtalk_fake.wait_for_replies(2)
    assert "回复「确认」写入 CRM" in replies[0] and replies[1].startswith("已写入 CRM")
    assert len(_tasks(bound_services)) == before + 1


THREE_TURNS = (
    "华兴最近怎么样？",
    "那他们要是说太贵了呢？",
    "帮我给他们建个任务：下周三前把三年TCO测算发给张总",
    "确认",
)


def test_three_turns_then_confirm_through_wecom_create_exactly_one_task(
    bound_services, wecom_fake, client_for
):
    """Short name (a homophone) → follow-up with 他们 → a request → 「确认」, as signed, encrypted callbacks."""
    client = client_for(bound_services)
    before = len(_tasks(bound_services))
    for n, say in enumerate(THREE_TURNS, 1):
        assert wecom_post(client, wecom_text_xml(say, msg_id=f"74000000000000000{n:02d}")).status_code == 200
        wait_jobs(bound_services)
        if n == 3:
            assert len(_tasks(bound_services)) == before  # proposed, not written
    texts = wecom_fake.texts()[-4:]
    assert "华星电子" in texts[0]
    assert "回复「确认」写入 CRM" in texts[2] and "华星电子" in texts[2] and texts[3].startswith("已写入 CRM")
    wecom_post(client, wecom_text_xml("确认", msg_id="7400000000000000099"))  # again: nothing pending
    wait_jobs(bound_services)
    tasks = _tasks(bound_services)
    assert len(tasks) == before + 1 and "TCO测算" in tasks[-1].title


def test_three_turns_then_confirm_through_dingtalk_create_exactly_one_task(
    bound_services, dingtalk_fake, client_for
):
    client = client_for(bound_services)
    before = len(_tasks(bound_services))
    for n, say in enumerate((*THREE_TURNS, "确认"), 1):
        raw = json.dumps(ding_text(dingtalk_fake, say, msg_id=f"dT{n}"), ensure_ascii=False).encode()
        assert (
            client.post("/channels/dingtalk/callback", content=raw, headers=ding_headers()).status_code == 200
        )
        wait_jobs(bound_services)
        if n == 3:
            assert len(_tasks(bound_services)) == before
    replies = dingtalk_fake.wait_for_replies(5)
    assert "华星电子" in replies[0]
    assert "回复「确认」写入 CRM" in replies[2] and replies[3].startswith("已写入 CRM")
    assert replies[4].startswith("当前没有待确认的操作")
    tasks = _tasks(bound_services)
    assert len(tasks) == before + 1 and "TCO测算" in tasks[-1].title

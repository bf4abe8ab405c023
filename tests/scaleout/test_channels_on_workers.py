"""Chat channels on the scale-out stack: the API process only verifies, deduplicates and enqueues; a
`copilot worker` process (its own services, built from the environment) answers through the platform
API — text and voice alike."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from copilot.api.app import create_app
from copilot.container import build_container
from copilot.features.channels.render import VOICE_RECEIVED
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from copilot.storage import tables as t
from tests.copilot.channels.conftest import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    TOKEN,
    wecom_post,
    wecom_text_xml,
    wecom_voice_xml,
)
from tests.copilot.conftest import DATA
from tests.fakes.fake_wecom import FakeWeCom

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.models, pytest.mark.timeout(300)]


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def wecom_stack(stack_env, queue, monkeypatch):
    """The stack with WeCom configured for this process and for the workers it starts."""
    with FakeWeCom.running(corp_id=CORP_ID, secret="wecom-secret") as fake:
        wecom = {
            "COPILOT_WECOM_CORP_ID": CORP_ID,
            "COPILOT_WECOM_AGENT_ID": AGENT_ID,
            "COPILOT_WECOM_SECRET": "wecom-secret",
            "COPILOT_WECOM_TOKEN": TOKEN,
            "COPILOT_WECOM_AES_KEY": AES_KEY,
            "COPILOT_WECOM_API_BASE": fake.url,
        }
        stack_env.env.update(wecom, COPILOT_REDIS_QUEUE=stack_env.queue_name)
        for name, value in wecom.items():
            monkeypatch.setenv(name, value)
        services = build_container(Settings())
        services.provide("jobs", queue)
        CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
        services.users.upsert_user(
            {"id": "rep_a", "name": "李雷", "role": "rep", "team_id": "t_a", "wecom_userid": "lilei"}
        )
        try:
            yield services, fake, stack_env
        finally:
            for proc in stack_env.workers:
                if proc.poll() is None:
                    stack_env.kill(proc)
            services.engine.dispose()


def _status(services, msg_id: str) -> str | None:
    with services.engine.connect() as conn:
        return conn.execute(
            select(t.channel_messages.c.status).where(t.channel_messages.c.msg_id == msg_id)
        ).scalar_one_or_none()


def test_a_text_message_is_answered_once_by_a_worker_process(wecom_stack):
    services, fake, stack = wecom_stack
    with TestClient(create_app(services)) as client:
        xml = wecom_text_xml("客户嫌贵怎么回？", msg_id="7300000000000000001")
        for _ in range(3):  # WeCom's retries
            assert wecom_post(client, xml).status_code == 200
    time.sleep(1.0)
    assert fake.sent == []  # nothing answers in the API process: the job waits for a worker

    stack.start_worker()
    _until(lambda: _status(services, "7300000000000000001") == "replied", 120, "the worker's reply")
    time.sleep(0.5)
    assert [m["touser"] for m in fake.sent] == ["lilei"]
    assert fake.sent[0]["text"]["content"].strip()


def test_a_voice_message_becomes_a_memo_on_a_worker_and_the_rep_gets_the_visit_summary(wecom_stack):
    services, fake, stack = wecom_stack
    fake.media["MEDIA_W1"] = (DATA / "audio" / "speech_nb.amr").read_bytes()
    stack.start_worker()
    with TestClient(create_app(services)) as client:
        assert (
            wecom_post(client, wecom_voice_xml("MEDIA_W1", msg_id="7300000000000000002")).status_code == 200
        )

    texts = _until(
        lambda: [x for x in fake.texts() if x.startswith("拜访纪要")] and fake.texts(), 180, "summary"
    )
    assert texts[0] == VOICE_RECEIVED
    with services.engine.connect() as conn:
        memos = conn.execute(select(t.memos).where(t.memos.c.audio_path.is_not(None))).all()
    assert len(memos) == 1 and memos[0].user_id == "rep_a"
    assert memos[0].status == "done" and memos[0].transcript

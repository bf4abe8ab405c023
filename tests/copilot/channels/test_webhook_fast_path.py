"""The acknowledgement fast path and its group commit (copilot/api/webhook_fast_path.py): many callbacks
at once are stored and queued in few batches, each message exactly once; anything unusual is answered
by the full FastAPI route with its documented error."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from connectors.channels.base import InboundMessage
from connectors.channels.wecom import build_envelope
from copilot.api.app import create_app
from copilot.features.channels.inbox import channel_messages
from copilot.features.channels.router import ChannelRouter
from copilot.infra.jobs import RedisJobQueue
from tests.copilot.channels.conftest import (
    AGENT_ID,
    CORP_ID,
    ding_headers,
    ding_text,
    wait_jobs,
    wecom_crypto,
    wecom_text_xml,
)


def _rows(services) -> list[tuple[str, str, str]]:
    with services.engine.connect() as conn:
        return sorted((r.channel, r.msg_id, r.status) for r in conn.execute(select(channel_messages)).all())


def _signed_wecom(content: str, msg_id: str) -> tuple[str, bytes]:
    enc = wecom_crypto().encrypt(wecom_text_xml(content, msg_id=msg_id))
    query = urlencode({"msg_signature": enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce})
    body = build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=enc.encrypt).encode()
    return f"/channels/wecom/callback?{query}", body


def _message(msg_id: str, channel: str = "wecom") -> InboundMessage:
    return InboundMessage(channel, msg_id, "lilei", "text", text="客户嫌贵怎么回？")


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every batch ``accept_many`` stores (the real method runs)."""
    sizes: list[int] = []
    real = ChannelRouter.accept_many

    def recording(self, messages):
        sizes.append(len(messages))
        return real(self, messages)

    monkeypatch.setattr(ChannelRouter, "accept_many", recording)
    return sizes


def test_accept_many_takes_each_message_id_once_within_a_batch_and_across_batches(
    bound_services, conversation, wecom_fake
):
    svc = bound_services.channels
    assert svc.accept_many([_message("m1"), _message("m2"), _message("m1")]) == [True, True, False]
    assert svc.accept_many([_message("m2"), _message("m3"), _message("m3", channel="dingtalk")]) == [
        False,
        True,
        True,  # the same id on another platform is another message
    ]
    assert svc.accept_many([]) == []
    wait_jobs(bound_services)

    assert _rows(bound_services) == [
        ("dingtalk", "m3", "unbound"),  # "lilei" is rep_a's WeCom id, not a DingTalk staff id
        ("wecom", "m1", "replied"),
        ("wecom", "m2", "replied"),
        ("wecom", "m3", "replied"),
    ]
    assert len(wecom_fake.sent) == 3  # m1, m2, m3 on WeCom: one reply each
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")] * 3


def test_when_the_jobs_cannot_be_queued_the_batch_is_forgotten_so_retries_are_not_repeats(
    bound_services, conversation
):
    svc = bound_services.channels
    svc.accept_many([_message("old")])
    wait_jobs(bound_services)
    svc.jobs = RedisJobQueue("redis://127.0.0.1:9/0")  # nothing listens on port 9: Redis is down

    with pytest.raises(Exception, match="jobs_unavailable"):
        svc.accept_many([_message("new1"), _message("old"), _message("new2")])

    assert [m for _, m, _ in _rows(bound_services)] == ["old"]  # new1/new2 forgotten, old untouched


async def _burst(app, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await asyncio.gather(*(client.post(url, content=body, headers=headers)
                                      for url, body, headers in requests))  # fmt: skip


def test_a_burst_of_callbacks_is_stored_in_a_few_batches_and_each_message_answered_once(
    bound_services, conversation, wecom_fake, dingtalk_fake, batches
):
    wecom = [(*_signed_wecom(f"问题{i}", f"burst{i}"), {}) for i in range(40)]
    wecom += wecom[:5]  # five platform retries inside the burst
    ding = [
        ("/channels/dingtalk/callback", json.dumps(ding_text(dingtalk_fake, f"钉钉{i}", msg_id=f"d{i}")).encode(),
         ding_headers())
        for i in range(10)
    ]  # fmt: skip

    responses = asyncio.run(_burst(create_app(bound_services), wecom + ding))

    assert [r.status_code for r in responses] == [200] * 55
    assert {r.text for r in responses[:45]} == {""} and {r.text for r in responses[45:]} == {"{}"}
    assert all(r.headers["x-request-id"] for r in responses)
    assert sum(batches) == 55 and len(batches) < 55  # grouped: fewer transactions than callbacks
    wait_jobs(bound_services)
    assert len(_rows(bound_services)) == 50
    assert len(wecom_fake.sent) == 40
    assert len(conversation.calls) == 50


def test_rejections_still_get_the_routes_documented_errors(bound_services, conversation, batches):
    url, body = _signed_wecom("客户嫌贵怎么回？", "bad1")
    app = create_app(bound_services)
    forged = url.replace("msg_signature=", "msg_signature=0")
    [bad_sig, bad_xml, too_big] = asyncio.run(
        _burst(app, [(forged, body, {}), (url, b"<xml><Encrypt>", {}), (url, b"x" * 70_000, {})])
    )

    assert (bad_sig.status_code, bad_sig.json()["error"]) == (403, "bad_signature")
    assert bad_sig.json()["request_id"] == bad_sig.headers["x-request-id"]
    assert (bad_xml.status_code, bad_xml.json()["error"]) == (400, "bad_message")
    assert too_big.status_code == 413
    assert batches == [] and _rows(bound_services) == []
    assert conversation.calls == []


def test_a_body_in_several_chunks_is_assembled_before_it_is_verified(
    bound_services, conversation, wecom_fake
):
    url, body = _signed_wecom("分块发送的消息", "chunked1")
    path, query = url.split("?")
    chunks = [body[:10], body[10:200], body[200:]]
    sent: list[dict] = []

    async def receive():
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}  # fmt: skip

    async def call():
        app = create_app(bound_services)
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(call())

    assert sent[0]["status"] == 200
    wait_jobs(bound_services)
    assert conversation.calls == [("rep_a", "分块发送的消息")]


def test_when_redis_is_down_the_callback_is_503_and_nothing_is_stored(
    bound_services, conversation, client_for
):
    bound_services.channels.jobs = RedisJobQueue("redis://127.0.0.1:9/0")
    url, body = _signed_wecom("客户嫌贵怎么回？", "noredis1")

    response = client_for(bound_services).post(url, content=body)

    assert (response.status_code, response.json()["error"]) == (503, "jobs_unavailable")
    assert _rows(bound_services) == []


def test_acknowledgements_are_counted_in_the_metrics(bound_services, conversation, client_for):
    client = client_for(bound_services)
    for i in range(3):
        url, body = _signed_wecom("客户嫌贵怎么回？", f"metric{i}")
        assert client.post(url, content=body).status_code == 200

    metrics = client.get("/metrics").text

    line = 'copilot_http_requests_total{method="POST",route="/channels/wecom/callback",status="200"} 3.0'
    assert line in metrics
    with bound_services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(channel_messages)).scalar() == 3

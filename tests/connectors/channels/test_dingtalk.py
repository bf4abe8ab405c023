"""DingTalk robot adapter: callback JSON, signed headers, API client against a fake on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from connectors.channels.base import (
    ChannelRejected,
    InboundMessage,
    MalformedMessage,
    MediaTooLarge,
    OutboundReply,
)
from connectors.channels.crypto import CryptoError, dingtalk_robot_sign
from connectors.channels.dingtalk import MAX_TEXT_BYTES, DingTalkChannel, DingTalkClient, parse_robot_message
from tests.fakes.fake_dingtalk import FakeDingTalk

# The text message of DingTalk's robot docs (机器人接收消息 › 消息格式), trimmed to the fields we read.
DOC_TEXT = {
    "conversationId": "cid6KeBBLoveMJOGXoYKF5x7EeiodoA==",
    "atUsers": [{"dingtalkId": "$:LWCP_v1:$Yr0G2rX3lAcYjEejtVNpUw=="}],
    "chatbotCorpId": "dinge8a565xxxx",
    "chatbotUserId": "$:LWCP_v1:$Yr0G2rX3lAcYjEejtVNpUw==",
    "msgId": "msgGEtDmdTw4h7xxx+l7xgiXg==",
    "senderNick": "杨xx",
    "isAdmin": True,
    "senderStaffId": "manager4220",
    "sessionWebhookExpiredTime": 1690000000000,
    "createAt": 1689994600000,
    "senderCorpId": "dinge8a565xxxx",
    "conversationType": "2",
    "senderId": "$:LWCP_v1:$xxxx",
    "isInAtList": True,
    "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=c5xxx",
    "text": {"content": " 你好"},
    "robotCode": "dingxxx",
    "msgtype": "text",
}


@pytest.fixture
def ding():
    with FakeDingTalk.running(app_key="k", app_secret="s", robot_code="dingrobot") as fake:
        yield fake


@pytest.fixture
def client(ding):
    c = DingTalkClient(
        api_base=ding.url, oapi_base=ding.url, app_key="k", app_secret="s", robot_code="dingrobot"
    )
    yield c
    c.close()


# -- callback body -------------------------------------------------------------------------------------------


def test_parses_the_documented_text_message():
    message = parse_robot_message(json.dumps(DOC_TEXT))

    assert message.kind == "text" and message.text == "你好"
    assert message.msg_id == "msgGEtDmdTw4h7xxx+l7xgiXg==" and message.sender_id == "manager4220"
    assert message.reply_url == DOC_TEXT["sessionWebhook"] and message.reply_url_expires_ms == 1690000000000
    assert message.created_at == 1689994600 and message.robot_code == "dingxxx"


def test_parses_audio_with_download_code_and_recognition():
    body = dict(
        DOC_TEXT,
        msgtype="audio",
        content={"downloadCode": "DL", "recognition": "钉钉，让进步发生", "duration": 4000},
    )
    del body["text"]

    message = parse_robot_message(json.dumps(body, ensure_ascii=False).encode())

    assert (message.kind, message.media_id, message.text) == ("voice", "DL", "钉钉，让进步发生")


def test_pictures_are_unsupported_not_errors():
    body = dict(DOC_TEXT, msgtype="picture", content={"downloadCode": "x"})

    assert parse_robot_message(json.dumps(body)).kind == "unsupported"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[1]",
        b"\xff\xfe",
        json.dumps({"msgtype": "text"}).encode(),
        json.dumps(dict(DOC_TEXT, text="x")).encode(),
    ],
)
def test_malformed_bodies_are_refused(raw):
    with pytest.raises(MalformedMessage):
        parse_robot_message(raw)


# -- client --------------------------------------------------------------------------------------------------


def test_batch_send_caches_the_token_and_sends_sample_text(client, ding):
    client.batch_send(["u1"], "你好")
    client.batch_send(["u1"], "**粗体**", markdown=True, title="建议")

    assert ding.token_requests == 1
    first, second = (m["body"] for m in ding.batch_sent)
    assert first["msgKey"] == "sampleText" and json.loads(first["msgParam"]) == {"content": "你好"}
    assert second["msgKey"] == "sampleMarkdown" and json.loads(second["msgParam"]) == {
        "title": "建议",
        "text": "**粗体**",
    }
    assert first["robotCode"] == "dingrobot" and first["userIds"] == ["u1"]


def test_a_401_refreshes_the_token_and_retries_once(client, ding):
    client.batch_send(["u1"], "a")
    ding.expire_tokens()
    client.batch_send(["u1"], "b")

    assert ding.token_requests == 2 and len(ding.batch_sent) == 2


def test_wrong_app_secret_is_rejected(ding):
    c = DingTalkClient(
        api_base=ding.url, oapi_base=ding.url, app_key="k", app_secret="bad", robot_code="dingrobot"
    )
    with pytest.raises(ChannelRejected):
        c.batch_send(["u"], "a")
    c.close()


def test_session_webhook_must_be_on_the_oapi_host(client, ding):
    client.send_by_session(ding.session_webhook("s9"), "你好")
    with pytest.raises(ChannelRejected):
        client.send_by_session("https://attacker.example/robot/sendBySession?session=x", "你好")

    assert [m["session"] for m in ding.session_sent] == ["s9"]


def test_download_resolves_the_code_and_fetches_the_bytes(client, ding):
    ding.files["DL"] = b"\x00amr" * 10

    assert client.download("DL") == b"\x00amr" * 10


def test_download_over_the_limit_is_refused(ding):
    ding.files["BIG"] = b"x" * 5000
    c = DingTalkClient(
        api_base=ding.url,
        oapi_base=ding.url,
        app_key="k",
        app_secret="s",
        robot_code="dingrobot",
        max_media_bytes=1000,
    )
    with pytest.raises(MediaTooLarge):
        c.download("BIG")
    c.close()


def test_an_unknown_download_code_is_rejected(client):
    with pytest.raises(ChannelRejected):
        client.download("nope")


# -- channel ------------------------------------------------------------------------------------------------


def test_channel_verifies_the_sign_header(client):
    channel = DingTalkChannel(client, app_secret="s")
    ts = str(int(time.time() * 1000))

    message = channel.parse_callback(
        json.dumps(DOC_TEXT).encode(), timestamp=ts, sign=dingtalk_robot_sign("s", ts)
    )

    assert message.text == "你好"
    with pytest.raises(CryptoError):
        channel.parse_callback(
            json.dumps(DOC_TEXT).encode(), timestamp=ts, sign=dingtalk_robot_sign("other", ts)
        )


def test_channel_rejects_a_timestamp_outside_the_window(client):
    channel = DingTalkChannel(client, app_secret="s", window_ms=60_000)
    ts = str(int(time.time() * 1000) - 120_000)

    with pytest.raises(CryptoError) as info:
        channel.parse_callback(b"{}", timestamp=ts, sign=dingtalk_robot_sign("s", ts))
    assert info.value.code == "expired_timestamp"


def test_channel_replies_by_session_while_valid_else_batch(client, ding):
    channel = DingTalkChannel(client, app_secret="s")
    now_ms = int(time.time() * 1000)
    valid = InboundMessage(
        "dingtalk", "m1", "u1", "text", reply_url=ding.session_webhook(), reply_url_expires_ms=now_ms + 60_000
    )
    expired = InboundMessage(
        "dingtalk", "m2", "u1", "text", reply_url=ding.session_webhook(), reply_url_expires_ms=now_ms - 1
    )

    channel.send(valid, OutboundReply("一"))
    channel.send(expired, OutboundReply("二"))

    assert ding.replies() == ["一", "二"]
    assert len(ding.session_sent) == 1 and len(ding.batch_sent) == 1


def test_channel_splits_long_replies(client, ding):
    channel = DingTalkChannel(client, app_secret="s")
    to = InboundMessage("dingtalk", "m1", "u1", "text")

    channel.send(to, OutboundReply("啊" * 4000))

    assert len(ding.batch_sent) == 3
    assert all(
        len(json.loads(m["body"]["msgParam"])["content"].encode()) <= MAX_TEXT_BYTES for m in ding.batch_sent
    )

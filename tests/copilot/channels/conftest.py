"""The real app with both channels configured and pointed at fake platform servers on 127.0.0.1.

``services`` is overridden here so that ``crm_services`` / ``kb_services`` of the parent conftest
are built with the channel settings in the environment.
"""

from __future__ import annotations

import time

import pytest

from connectors.channels.crypto import MessageCrypto, dingtalk_robot_sign
from connectors.channels.wecom import build_envelope, build_xml
from copilot.container import Container, build_container
from copilot.domain import ChatAnswer, Citation
from copilot.settings import Settings
from tests.fakes.fake_dingtalk import FakeDingTalk
from tests.fakes.fake_wecom import FakeWeCom

CORP_ID = "wwcorp0001"
AGENT_ID = "1000002"
TOKEN = "QDG6eK"  # noqa: S105 -- test value
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
DING_STAFF = "manager4220"


@pytest.fixture
def wecom_fake():
    with FakeWeCom.running(corp_id=CORP_ID, secret="wecom-secret") as fake:
        yield fake


@pytest.fixture
def dingtalk_fake():
    with FakeDingTalk.running(app_key="dingkey", app_secret="dingsecret", robot_code="dingrobot") as fake:
        yield fake


@pytest.fixture
def services(wecom_fake, dingtalk_fake, monkeypatch) -> Container:
    env = {
        "COPILOT_WECOM_CORP_ID": CORP_ID,
        "COPILOT_WECOM_AGENT_ID": AGENT_ID,
        "COPILOT_WECOM_SECRET": "wecom-secret",
        "COPILOT_WECOM_TOKEN": TOKEN,
        "COPILOT_WECOM_AES_KEY": AES_KEY,
        "COPILOT_WECOM_API_BASE": wecom_fake.url,
        "COPILOT_DINGTALK_APP_KEY": "dingkey",
        "COPILOT_DINGTALK_APP_SECRET": "dingsecret",
        "COPILOT_DINGTALK_ROBOT_CODE": "dingrobot",
        "COPILOT_DINGTALK_API_BASE": dingtalk_fake.url,
        "COPILOT_DINGTALK_OAPI_BASE": dingtalk_fake.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    built = build_container(Settings())
    yield built
    jobs = built.jobs
    jobs.wait_idle(10)
    jobs.shutdown()


@pytest.fixture
def bound_services(crm_services) -> Container:
    """The small CRM, with rep_a (WeCom ``lilei``) also bound to a DingTalk staff id."""
    crm_services.users.upsert_user(
        {
            "id": "rep_a",
            "name": "李雷",
            "role": "rep",
            "team_id": "t_a",
            "wecom_userid": "lilei",
            "dingtalk_userid": DING_STAFF,
        }
    )
    return crm_services


class ScriptedConversation:
    """Plays the conversation: records what it was asked, answers with one citation."""

    def __init__(self, answer: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answer = answer

    def reply(self, user, message, *, customer_id=None, channel_key=None, **_ignored) -> ChatAnswer:
        self.calls.append((user.id, message))
        citation = Citation(
            "kb",
            "chunk-1",
            "§1 ¶1",
            "话术/价格异议话术.md",
            "先认同客户对成本的关注",
            "依据《价格异议话术》2026-03-01 §1",
        )
        return ChatAnswer(
            answer=self.answer or f"关于「{message}」：先认同客户对成本的关注。", citations=(citation,)
        )


@pytest.fixture
def conversation(bound_services, monkeypatch) -> ScriptedConversation:
    scripted = ScriptedConversation()
    bound_services.provide("conversation", scripted)
    return scripted


def wait_jobs(services: Container) -> None:
    assert services.jobs.wait_idle(60), "jobs did not finish"  # generous: CI shares 2 cores


def voice_hook(services: Container) -> list[tuple[str, str, bytes]]:
    """Replace the on_voice hook by a recorder; returns the list it appends (user id, msg id, audio)."""
    received: list[tuple[str, str, bytes]] = []
    services.channels.on_voice = lambda user, message, audio: received.append(
        (user.id, message.msg_id, audio)
    )
    return received


# -- building platform requests ------------------------------------------------------------------------------


def wecom_crypto() -> MessageCrypto:
    return MessageCrypto(TOKEN, AES_KEY, CORP_ID)


def wecom_text_xml(content: str, *, msg_id: str = "7000000000000000001", sender: str = "lilei") -> str:
    return build_xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": sender,
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
            "AgentID": int(AGENT_ID),
        }
    )


def wecom_voice_xml(media_id: str, *, msg_id: str = "7000000000000000002", sender: str = "lilei") -> str:
    return build_xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": sender,
            "CreateTime": int(time.time()),
            "MsgType": "voice",
            "MediaId": media_id,
            "Format": "amr",
            "MsgId": msg_id,
            "AgentID": int(AGENT_ID),
        }
    )


def wecom_post(client, plain_xml: str, *, timestamp: int | None = None, crypto: MessageCrypto | None = None):
    """Encrypt and sign ``plain_xml`` as WeCom does and POST it to the callback."""
    enc = (crypto or wecom_crypto()).encrypt(plain_xml, timestamp=timestamp)
    return wecom_post_envelope(
        client, enc.encrypt, signature=enc.signature, timestamp=enc.timestamp, nonce=enc.nonce
    )


def wecom_post_envelope(
    client, encrypt: str, *, signature: str, timestamp: str, nonce: str, body: str | None = None
):
    params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
    content = (
        body if body is not None else build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=encrypt)
    )
    return client.post("/channels/wecom/callback", params=params, content=content.encode())


def ding_headers(*, timestamp_ms: int | None = None, secret: str = "dingsecret") -> dict[str, str]:
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    return {"timestamp": ts, "sign": dingtalk_robot_sign(secret, ts), "content-type": "application/json"}


def ding_text(
    fake: FakeDingTalk, content: str, *, msg_id: str = "msgA1", staff: str = DING_STAFF, **extra
) -> dict:
    body = {
        "msgId": msg_id,
        "msgtype": "text",
        "text": {"content": content},
        "senderStaffId": staff,
        "senderId": "$:LWCP_v1:$abc",
        "senderNick": "李雷",
        "conversationId": "cidXYZ",
        "conversationType": "1",
        "robotCode": "dingrobot",
        "sessionWebhook": fake.session_webhook("s1"),
        "sessionWebhookExpiredTime": int(time.time() * 1000) + 3_600_000,
        "createAt": int(time.time() * 1000),
    }
    body.update(extra)
    return body

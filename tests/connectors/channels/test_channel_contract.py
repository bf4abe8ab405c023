"""The Channel contract (tests/contracts/channel.py) on WeComChannel and DingTalkChannel, each against
its fake platform on 127.0.0.1. DingTalk runs it twice: replying through the message's session webhook
(still valid) and through the robot's batch-send API (the webhook expired)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from connectors.channels.base import ChannelUnavailable, InboundMessage, OutboundReply
from connectors.channels.crypto import DINGTALK_ROBOT_WINDOW_MS, MessageCrypto, dingtalk_robot_sign
from connectors.channels.dingtalk import DingTalkChannel, DingTalkClient
from connectors.channels.wecom import (
    REPLAY_WINDOW_S,
    WeComChannel,
    WeComClient,
    build_envelope,
    build_xml,
    parse_envelope,
)
from tests.connectors.channels.test_dingtalk import DOC_TEXT as DINGTALK_DOC_TEXT
from tests.connectors.channels.test_wecom import AES_KEY
from tests.contracts.channel import Callback, ChannelContract, ChannelEnv, Sent, closed_port
from tests.fakes.fake_dingtalk import FakeDingTalk
from tests.fakes.fake_wecom import FakeWeCom

MEDIA_LIMIT = 64 * 1024

# -- WeCom ----------------------------------------------------------------------------------------------------

CORP_ID, SECRET, AGENT_ID, TOKEN = "wwcorp", "s3cret", "1000002", "tok"


class WeComEnv(ChannelEnv):
    text_limit = 2048  # message/send content (the fake refuses more, as WeCom does: 45002)
    media_limit = MEDIA_LIMIT
    replay_window_s = REPLAY_WINDOW_S

    def __init__(self, fake: FakeWeCom) -> None:
        self.fake = fake
        self.crypto = MessageCrypto(TOKEN, AES_KEY, CORP_ID)
        self.clients: list[WeComClient] = []
        self.channel = self._channel(fake.url)

    def _channel(self, url: str) -> WeComChannel:
        client = WeComClient(
            base_url=url,
            corp_id=CORP_ID,
            secret=SECRET,
            agent_id=AGENT_ID,
            timeout=3.0,
            max_media_bytes=self.media_limit,
        )
        self.clients.append(client)
        return WeComChannel(self.crypto, client)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def _signed(self, xml: str, at: float | None = None) -> Callback:
        """The POST WeCom makes: the message encrypted in an envelope, signed in the query string."""
        enc = self.crypto.encrypt(xml, timestamp=int(time.time() if at is None else at))
        body = build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=enc.encrypt).encode()
        return Callback(
            body, {"msg_signature": enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce}
        )

    def _message(self, sender: str, msg_id: str, at: float | None, **fields: str | int) -> str:
        created = int(time.time() if at is None else at)
        head: dict[str, str | int] = {"ToUserName": CORP_ID, "FromUserName": sender, "CreateTime": created}
        return build_xml(head | fields | {"MsgId": msg_id, "AgentID": int(AGENT_ID)})

    def text_callback(self, sender: str, text: str, *, msg_id: str, at: float | None = None) -> Callback:
        return self._signed(self._message(sender, msg_id, at, MsgType="text", Content=text), at)

    def voice_callback(self, sender: str, media_id: str, *, msg_id: str) -> Callback:
        xml = self._message(sender, msg_id, None, MsgType="voice", MediaId=media_id, Format="amr")
        return self._signed(xml)

    def forged(self, callback: Callback) -> Callback:
        encrypt, _ = parse_envelope(callback.body)
        impostor = MessageCrypto("not-the-token", AES_KEY, CORP_ID)
        auth = dict(callback.auth)
        auth["msg_signature"] = impostor.signature(auth["timestamp"], auth["nonce"], encrypt)
        return Callback(callback.body, auth)

    def malformed_callbacks(self) -> list[Callback]:
        signed = self._signed("<xml/>")
        return [
            Callback(b"<xml><Encrypt>", signed.auth),  # the envelope is not XML
            Callback(b"<xml><ToUserName>wwcorp</ToUserName></xml>", signed.auth),  # no Encrypt
            self._signed("<xml><FromUserName>lilei</FromUserName>"),  # the decrypted message is not XML
            self._signed(build_xml({"FromUserName": "lilei", "MsgType": "text", "Content": "x"})),  # no MsgId
            self._signed(build_xml({"MsgType": "text", "Content": "x", "MsgId": "1"})),  # no sender
            self._signed(
                build_xml({"FromUserName": "lilei", "MsgType": "voice", "MsgId": "2"})
            ),  # no MediaId
        ]

    def put_media(self, media_id: str, data: bytes) -> None:
        self.fake.media[media_id] = data

    def sent(self) -> list[Sent]:
        return [
            Sent(m["touser"], m[m["msgtype"]]["content"], markdown=m["msgtype"] == "markdown")
            for m in self.fake.sent
        ]

    def unreachable_channel(self) -> WeComChannel:
        return self._channel(f"http://127.0.0.1:{closed_port()}")


class TestWeComChannel(ChannelContract):
    @pytest.fixture
    def env(self) -> Iterator[WeComEnv]:
        with FakeWeCom.running(corp_id=CORP_ID, secret=SECRET) as fake:
            env = WeComEnv(fake)
            yield env
            env.close()

    def test_replies_go_out_as_the_configured_app(self, env: WeComEnv):
        message = env.parse(env.text_callback("lilei", "你好", msg_id="m-20"))

        env.channel.send(message, OutboundReply("你好，我是销售副驾"))

        (sent,) = env.fake.sent
        assert sent["agentid"] == int(AGENT_ID) and sent["msgtype"] == "text"


# -- DingTalk -------------------------------------------------------------------------------------------------

APP_KEY, APP_SECRET, ROBOT = "k", "s", "dingrobot"


class DingTalkEnv(ChannelEnv):
    text_limit = 5000  # the adapter's per-message size (MAX_TEXT_BYTES)
    media_limit = MEDIA_LIMIT
    replay_window_s = DINGTALK_ROBOT_WINDOW_MS / 1000

    def __init__(self, fake: FakeDingTalk, *, route: str) -> None:
        self.fake = fake
        self.route = route  # "session": the message's webhook is valid; "batch": it has expired
        self.clients: list[DingTalkClient] = []
        self.channel = self._channel(fake.url)

    def _channel(self, url: str) -> DingTalkChannel:
        client = DingTalkClient(
            api_base=url,
            oapi_base=url,
            app_key=APP_KEY,
            app_secret=APP_SECRET,
            robot_code=ROBOT,
            timeout=3.0,
            max_media_bytes=self.media_limit,
        )
        self.clients.append(client)
        return DingTalkChannel(client, app_secret=APP_SECRET)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    @staticmethod
    def _headers(at: float | None = None, secret: str = APP_SECRET) -> dict[str, str]:
        ts = str(int((time.time() if at is None else at) * 1000))
        return {"timestamp": ts, "sign": dingtalk_robot_sign(secret, ts)}

    def _body(self, sender: str, msg_id: str, at: float | None, **fields: object) -> dict:
        """The documented robot message, from ``sender``, with this conversation's session webhook."""
        now_ms = int(time.time() * 1000)
        expires = now_ms + 90 * 60_000 if self.route == "session" else now_ms - 60_000
        body = {k: v for k, v in DINGTALK_DOC_TEXT.items() if k != "text"}
        return body | {
            "msgId": msg_id,
            "senderStaffId": sender,
            "robotCode": ROBOT,
            "createAt": int((time.time() if at is None else at) * 1000),
            "sessionWebhook": self.fake.session_webhook(f"sess-{sender}"),
            "sessionWebhookExpiredTime": expires,
            **fields,
        }

    def text_callback(self, sender: str, text: str, *, msg_id: str, at: float | None = None) -> Callback:
        body = self._body(sender, msg_id, at, msgtype="text", text={"content": text})
        return Callback(json.dumps(body, ensure_ascii=False).encode(), self._headers(at))

    def voice_callback(self, sender: str, media_id: str, *, msg_id: str) -> Callback:
        content = {"downloadCode": media_id, "recognition": "", "duration": 4000}
        body = self._body(sender, msg_id, None, msgtype="audio", content=content)
        return Callback(json.dumps(body, ensure_ascii=False).encode(), self._headers())

    def forged(self, callback: Callback) -> Callback:
        return Callback(
            callback.body, self._headers(int(callback.auth["timestamp"]) / 1000, "not-the-secret")
        )

    def malformed_callbacks(self) -> list[Callback]:
        text = self._body("lilei", "m-x", None, msgtype="text", text={"content": "x"})
        audio = self._body("lilei", "m-y", None, msgtype="audio", content={"duration": 4000})
        bodies = [
            b"{",  # not JSON
            b"\xff\xfe",  # not UTF-8
            b"[1]",  # not an object
            json.dumps({k: v for k, v in text.items() if k != "msgId"}).encode(),
            json.dumps({k: v for k, v in text.items() if k not in ("senderStaffId", "senderId")}).encode(),
            json.dumps(text | {"text": "x"}).encode(),  # text without text.content
            json.dumps(audio).encode(),  # audio without its downloadCode
        ]
        return [Callback(body, self._headers()) for body in bodies]

    def put_media(self, media_id: str, data: bytes) -> None:
        self.fake.files[media_id] = data

    def sent(self) -> list[Sent]:
        out: list[tuple[float, Sent]] = []
        for m in self.fake.session_sent:
            kind = m["body"]["msgtype"]
            text = m["body"][kind]["content" if kind == "text" else "text"]
            out.append((m["at"], Sent(m["session"].removeprefix("sess-"), text, markdown=kind == "markdown")))
        for m in self.fake.batch_sent:
            (to,) = m["body"]["userIds"]
            param = json.loads(m["body"]["msgParam"])
            markdown = m["body"]["msgKey"] == "sampleMarkdown"
            out.append((m["at"], Sent(to, param["text"] if markdown else param["content"], markdown)))
        return [s for _, s in sorted(out, key=lambda pair: pair[0])]

    def unreachable_channel(self) -> DingTalkChannel:
        return self._channel(f"http://127.0.0.1:{closed_port()}")


class TestDingTalkChannel(ChannelContract):
    @pytest.fixture(params=["session", "batch"])
    def env(self, request) -> Iterator[DingTalkEnv]:
        with FakeDingTalk.running(app_key=APP_KEY, app_secret=APP_SECRET, robot_code=ROBOT) as fake:
            env = DingTalkEnv(fake, route=request.param)
            yield env
            env.close()

    def test_replies_take_the_session_webhook_only_while_it_is_valid(self, env: DingTalkEnv):
        message = env.parse(env.text_callback("manager4220", "你好", msg_id="m-21"))

        env.channel.send(message, OutboundReply("一"))
        env.channel.send(message, OutboundReply("**二**", markdown=True))

        by_session, by_batch = len(env.fake.session_sent), len(env.fake.batch_sent)
        assert (by_session, by_batch) == ((2, 0) if env.route == "session" else (0, 2))
        assert env.sent() == [Sent("manager4220", "一", False), Sent("manager4220", "**二**", True)]

    def test_an_unreachable_session_webhook_is_channel_unavailable(self, env: DingTalkEnv):
        dead_url = f"http://127.0.0.1:{closed_port()}"
        dead = env._channel(dead_url)
        message = InboundMessage(
            "dingtalk",
            "m-22",
            "manager4220",
            "text",
            reply_url=f"{dead_url}/robot/sendBySession?session=s1",
            reply_url_expires_ms=int(time.time() * 1000) + 60_000,
        )

        with pytest.raises(ChannelUnavailable):
            dead.send(message, OutboundReply("在的"))

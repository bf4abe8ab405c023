"""WeCom adapter: callback XML, the server API client against a fake on 127.0.0.1, reply splitting."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.channels.base import (
    ChannelRejected,
    ChannelUnavailable,
    InboundMessage,
    MalformedMessage,
    MediaTooLarge,
    OutboundReply,
    split_utf8,
)
from connectors.channels.crypto import CryptoError, MessageCrypto
from connectors.channels.wecom import (
    MAX_CONTENT_BYTES,
    WeComChannel,
    WeComClient,
    build_envelope,
    build_xml,
    parse_envelope,
    parse_message,
)
from tests.fakes.fake_wecom import FakeWeCom

AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture
def wecom():
    with FakeWeCom.running(corp_id="wwcorp", secret="s3cret") as fake:
        yield fake


@pytest.fixture
def client(wecom):
    c = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="s3cret", agent_id="1000002")
    yield c
    c.close()


# -- XML ------------------------------------------------------------------------------------------------------

# The decrypted text message of WeCom's callback docs (接收消息与事件 › 消息格式 › 文本消息).
DOC_TEXT = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[fromUser]]></FromUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[text]]></MsgType>
   <Content><![CDATA[this is a test]]></Content>
   <MsgId>1234567890123456</MsgId>
   <AgentID>1</AgentID>
</xml>"""


def test_parses_the_documented_text_message():
    message = parse_message(DOC_TEXT)

    assert message == InboundMessage(
        "wecom", "1234567890123456", "fromUser", "text", text="this is a test", created_at=1348831860
    )


def test_parses_voice_with_media_id_and_format():
    xml = build_xml(
        {
            "FromUserName": "lilei",
            "CreateTime": 1,
            "MsgType": "voice",
            "MediaId": "M1",
            "Format": "AMR",
            "MsgId": "9",
        }
    )

    message = parse_message(xml)

    assert (message.kind, message.media_id, message.media_format, message.msg_id) == (
        "voice",
        "M1",
        "amr",
        "9",
    )


def test_events_without_msgid_get_a_stable_dedup_key():
    xml = build_xml(
        {
            "FromUserName": "lilei",
            "CreateTime": 1700000000,
            "MsgType": "event",
            "Event": "click",
            "EventKey": "K",
        }
    )

    first, second = parse_message(xml), parse_message(xml)

    assert first.kind == "event" and first.event == "click" and first.event_key == "K"
    assert first.msg_id == second.msg_id and "lilei" in first.msg_id


def test_unknown_message_types_are_unsupported_not_errors():
    xml = build_xml({"FromUserName": "lilei", "MsgType": "location", "MsgId": "5"})

    assert parse_message(xml).kind == "unsupported"


def test_cdata_survives_a_closing_sequence_in_the_content():
    xml = build_xml({"FromUserName": "u", "MsgType": "text", "Content": "a ]]> b <c/>", "MsgId": "1"})

    assert parse_message(xml).text == "a ]]> b <c/>"


@pytest.mark.parametrize(
    "body",
    [
        "<xml><Encrypt>",
        "<notxml><Encrypt>x</Encrypt></notxml>",
        "<xml><ToUserName>x</ToUserName></xml>",
        '<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
        '<!DOCTYPE xml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>',
        '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><xml><Encrypt>x</Encrypt></xml>',
        '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><Encrypt>x</Encrypt></xml>',
        "<!DOCTYPE xml><xml><Encrypt>x</Encrypt></xml>",  # any DTD at all
        "<xml><Encrypt>&undefined;</Encrypt></xml>",
        "<xml><Encrypt>x</Encrypt></xml><xml><Encrypt>y</Encrypt></xml>",
        "",
    ],
)
def test_malformed_or_hostile_envelopes_are_refused(body):
    with pytest.raises(MalformedMessage):
        parse_envelope(body.encode())


def test_envelope_round_trip():
    assert parse_envelope(
        build_envelope(to_user="wwcorp", agent_id="1000002", encrypt="abc+/=").encode()
    ) == ("abc+/=", "1000002")


def test_fields_are_the_roots_children_first_one_wins_and_entities_are_decoded():
    body = (
        "<xml><Encrypt> a&amp;b&#x4E2D; </Encrypt><AgentID>1<Nested>9</Nested>2</AgentID>"
        "<Encrypt>second</Encrypt></xml>"
    )

    assert parse_envelope(body.encode()) == ("a&b中", "12")


def test_a_message_without_msgid_is_malformed():
    with pytest.raises(MalformedMessage):
        parse_message(build_xml({"FromUserName": "u", "MsgType": "text", "Content": "hi"}))


# -- splitting ----------------------------------------------------------------------------------------------


def test_split_keeps_short_text_whole():
    assert split_utf8("你好", 2048) == ["你好"]


def test_split_cuts_at_line_breaks_under_the_byte_limit():
    text = "\n".join("销售" * 100 for _ in range(10))  # 600 bytes a line

    parts = split_utf8(text, 2048)

    assert len(parts) == 4 and all(len(p.encode()) <= 2048 for p in parts)
    assert all(not p.startswith("\n") for p in parts)


@given(st.text(min_size=0, max_size=400), st.integers(min_value=4, max_value=64))
def test_split_never_exceeds_the_limit_or_loses_characters(text, limit):
    parts = split_utf8(text, limit)

    assert all(len(p.encode()) <= limit for p in parts)
    assert "".join(parts).replace("\n", "") == "".join(text.splitlines(keepends=True)).replace("\n", "")


# -- API client ----------------------------------------------------------------------------------------------


def test_token_is_cached_across_calls(client, wecom):
    client.send_text("lilei", "一")
    client.send_markdown("lilei", "**二**")

    assert wecom.token_requests == 1
    assert [m["msgtype"] for m in wecom.sent] == ["text", "markdown"]
    assert wecom.sent[0] == {
        "touser": "lilei",
        "msgtype": "text",
        "agentid": 1000002,
        "text": {"content": "一"},
    }


def test_token_is_refreshed_after_its_lifetime(wecom):
    now = [1000.0]
    c = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="s3cret", agent_id=1, clock=lambda: now[0])
    c.send_text("u", "a")
    now[0] += 7200 - 299
    c.send_text("u", "b")
    c.close()

    assert wecom.token_requests == 2


def test_an_expired_token_is_refreshed_and_the_call_retried_once(client, wecom):
    client.send_text("u", "a")
    wecom.expire_tokens()
    client.send_text("u", "b")

    assert wecom.token_requests == 2 and len(wecom.sent) == 2


def test_wrong_secret_is_rejected(wecom):
    c = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="wrong", agent_id=1)
    with pytest.raises(ChannelRejected) as info:
        c.send_text("u", "a")
    c.close()
    assert info.value.code == 40001


def test_system_busy_is_retryable_and_other_errors_are_not(client, wecom):
    wecom.fail_next_send(-1)
    with pytest.raises(ChannelUnavailable):
        client.send_text("u", "a")
    wecom.fail_next_send(81013)
    with pytest.raises(ChannelRejected):
        client.send_text("u", "a")


def test_unreachable_server_is_unavailable():
    c = WeComClient(base_url="http://127.0.0.1:9", corp_id="c", secret="s", agent_id=1, timeout=1)
    with pytest.raises(ChannelUnavailable):
        c.send_text("u", "a")
    c.close()


def test_content_over_2048_bytes_must_be_split_first(client):
    with pytest.raises(ValueError, match="2048"):
        client.send_text("u", "啊" * 700)


def test_template_card_is_sent_as_is(client, wecom):
    card = {"card_type": "button_interaction", "main_title": {"title": "建议"}, "task_id": "sg_1"}
    client.send_template_card("lilei", card)

    assert wecom.sent[0]["msgtype"] == "template_card" and wecom.sent[0]["template_card"] == card


def test_media_get_returns_the_bytes(client, wecom):
    wecom.media["M1"] = b"#!AMR\n\x00\x01"

    assert client.get_media("M1") == b"#!AMR\n\x00\x01"


def test_media_get_with_an_invalid_id_is_rejected(client):
    with pytest.raises(ChannelRejected) as info:
        client.get_media("nope")
    assert info.value.code == 40007


def test_media_get_refreshes_an_expired_token(client, wecom):
    wecom.media["M1"] = b"abc"
    client.get_media("M1")
    wecom.expire_tokens()

    assert client.get_media("M1") == b"abc" and wecom.token_requests == 2


def test_media_over_the_limit_is_refused(wecom):
    wecom.media["BIG"] = b"x" * 5000
    c = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="s3cret", agent_id=1, max_media_bytes=4096)
    with pytest.raises(MediaTooLarge):
        c.get_media("BIG")
    c.close()


def test_client_uses_no_environment_proxy(monkeypatch, wecom):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    c = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="s3cret", agent_id=1)
    c.send_text("u", "a")
    c.close()

    assert len(wecom.sent) == 1  # sent directly, not through the (dead) proxy


# -- channel ---------------------------------------------------------------------------------------------------


def _channel(client, **kwargs) -> tuple[WeComChannel, MessageCrypto]:
    crypto = MessageCrypto("tok", AES_KEY, "wwcorp")
    return WeComChannel(crypto, client, **kwargs), crypto


def test_channel_decrypts_a_signed_callback(client):
    channel, crypto = _channel(client)
    enc = crypto.encrypt(DOC_TEXT.replace("1348831860", str(int(time.time()))))
    body = build_envelope(to_user="wwcorp", agent_id="1", encrypt=enc.encrypt).encode()

    message = channel.parse_callback(
        body, msg_signature=enc.signature, timestamp=enc.timestamp, nonce=enc.nonce
    )

    assert message.text == "this is a test" and message.sender_id == "fromUser"


def test_channel_checks_the_signature_before_the_timestamp(client):
    channel, crypto = _channel(client)
    enc = crypto.encrypt("<xml/>", timestamp=1)
    body = build_envelope(to_user="wwcorp", agent_id="1", encrypt=enc.encrypt).encode()

    with pytest.raises(CryptoError) as bad_sig:
        channel.parse_callback(body, msg_signature="0" * 40, timestamp=enc.timestamp, nonce=enc.nonce)
    with pytest.raises(CryptoError) as stale:
        channel.parse_callback(body, msg_signature=enc.signature, timestamp=enc.timestamp, nonce=enc.nonce)

    assert bad_sig.value.code == "bad_signature" and stale.value.code == "expired_timestamp"


def test_channel_replay_window_uses_its_clock(client):
    channel, crypto = _channel(client, clock=lambda: 1_700_000_000 + 299)
    enc = crypto.encrypt(DOC_TEXT, timestamp=1_700_000_000)
    body = build_envelope(to_user="wwcorp", agent_id="1", encrypt=enc.encrypt).encode()

    assert channel.parse_callback(
        body, msg_signature=enc.signature, timestamp=enc.timestamp, nonce=enc.nonce
    ).msg_id


def test_channel_url_verification_rejects_a_stale_timestamp(client):
    channel, crypto = _channel(client)
    enc = crypto.encrypt("echo", timestamp=int(time.time()) - 3600)

    with pytest.raises(CryptoError):
        channel.verify_url(enc.signature, enc.timestamp, enc.nonce, enc.encrypt)


def test_channel_send_splits_long_replies(client, wecom):
    channel, _ = _channel(client)
    to = InboundMessage("wecom", "1", "lilei", "text")

    channel.send(to, OutboundReply("啊" * 1500))

    assert len(wecom.sent) == 3
    assert all(len(m["text"]["content"].encode()) <= MAX_CONTENT_BYTES for m in wecom.sent)
    assert "".join(m["text"]["content"] for m in wecom.sent) == "啊" * 1500

"""WeCom self-built app end to end: the real app, real encrypted payloads, a fake WeCom server."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from copilot.features.channels.inbox import channel_messages
from copilot.features.channels.render import MEDIA_TOO_LARGE, VOICE_RECEIVED
from tests.copilot.channels.conftest import (
    voice_hook,
    wait_jobs,
    wecom_crypto,
    wecom_post,
    wecom_post_envelope,
    wecom_text_xml,
    wecom_voice_xml,
)


def _stored(services) -> list[dict]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(channel_messages)).mappings()]


def test_url_verification_answers_the_decrypted_echostr_as_plain_text(bound_services, client_for):
    enc = wecom_crypto().encrypt("1616140317555161061")
    response = client_for(bound_services).get(
        "/channels/wecom/callback",
        params={
            "msg_signature": enc.signature,
            "timestamp": enc.timestamp,
            "nonce": enc.nonce,
            "echostr": enc.encrypt,
        },
    )

    assert response.status_code == 200
    assert response.text == "1616140317555161061"
    assert response.headers["content-type"].startswith("text/plain")


def test_url_verification_with_a_bad_signature_is_403(bound_services, client_for):
    enc = wecom_crypto().encrypt("echo")
    response = client_for(bound_services).get(
        "/channels/wecom/callback",
        params={
            "msg_signature": "0" * 40,
            "timestamp": enc.timestamp,
            "nonce": enc.nonce,
            "echostr": enc.encrypt,
        },
    )

    assert response.status_code == 403
    assert response.json()["error"] == "bad_signature"


def test_text_message_is_acked_fast_and_answered_with_a_citation_through_message_send(
    bound_services, conversation, wecom_fake, client_for
):
    client = client_for(bound_services)
    started = time.perf_counter()
    response = wecom_post(client, wecom_text_xml("客户嫌贵怎么回？"))
    elapsed = time.perf_counter() - started

    assert response.status_code == 200 and response.text == ""
    assert elapsed < 1.0
    [sent] = wecom_fake.wait_for_sent(1)
    assert sent["touser"] == "lilei" and sent["agentid"] == 1000002 and sent["msgtype"] == "text"
    assert "先认同客户对成本的关注" in sent["text"]["content"]
    assert "依据《价格异议话术》2026-03-01 §1" in sent["text"]["content"]
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")]
    wait_jobs(bound_services)
    [row] = _stored(bound_services)
    assert (row["channel"], row["msg_id"], row["status"], row["user_id"]) == (
        "wecom",
        "7000000000000000001",
        "replied",
        "rep_a",
    )


def test_the_same_msgid_delivered_three_times_gets_exactly_one_reply(
    bound_services, conversation, wecom_fake, client_for
):
    client = client_for(bound_services)
    xml = wecom_text_xml("客户嫌贵怎么回？", msg_id="42")
    # WeCom retries with a fresh nonce and signature; the MsgId stays the same.
    responses = [wecom_post(client, xml) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    wait_jobs(bound_services)
    assert len(wecom_fake.sent) == 1
    assert len(conversation.calls) == 1
    assert len(_stored(bound_services)) == 1


def test_access_token_is_fetched_once_and_refreshed_when_wecom_expires_it(
    bound_services, conversation, wecom_fake, client_for
):
    client = client_for(bound_services)
    wecom_post(client, wecom_text_xml("第一问", msg_id="1"))
    wecom_fake.wait_for_sent(1)
    wecom_post(client, wecom_text_xml("第二问", msg_id="2"))
    wecom_fake.wait_for_sent(2)
    assert wecom_fake.token_requests == 1

    wecom_fake.expire_tokens()
    wecom_post(client, wecom_text_xml("第三问", msg_id="3"))
    wecom_fake.wait_for_sent(3)
    assert wecom_fake.token_requests == 2


def test_long_answers_are_split_at_the_2048_byte_limit(bound_services, conversation, wecom_fake, client_for):
    conversation.answer = "\n".join(
        f"第{i}条：先认同客户对成本的关注，再把话题转到总拥有成本。" for i in range(120)
    )
    wecom_post(client_for(bound_services), wecom_text_xml("给我全部话术"))
    wait_jobs(bound_services)

    contents = [m["text"]["content"] for m in wecom_fake.sent]
    assert len(contents) >= 2
    assert all(len(c.encode()) <= 2048 for c in contents)
    assert "".join(contents).replace("\n", "") == (
        conversation.answer + "依据：[1] 依据《价格异议话术》2026-03-01 §1"
    ).replace("\n", "")


def test_unknown_user_is_asked_to_have_the_admin_bind_the_account(
    bound_services, conversation, wecom_fake, client_for
):
    wecom_post(client_for(bound_services), wecom_text_xml("你好", sender="stranger"))
    [sent] = wecom_fake.wait_for_sent(1)
    wait_jobs(bound_services)

    assert sent["touser"] == "stranger"
    assert "管理员" in sent["text"]["content"] and "绑定" in sent["text"]["content"]
    assert conversation.calls == []
    assert _stored(bound_services)[0]["status"] == "unbound"


def test_voice_is_fetched_with_media_get_and_handed_to_the_voice_hook(
    bound_services, conversation, wecom_fake, client_for
):
    received = voice_hook(bound_services)
    wecom_fake.media["MEDIA_1"] = b"#!AMR\n" + bytes(range(256)) * 4
    response = wecom_post(client_for(bound_services), wecom_voice_xml("MEDIA_1", msg_id="99"))
    wait_jobs(bound_services)

    assert response.status_code == 200
    assert wecom_fake.media_requests == ["MEDIA_1"]
    assert received == [("rep_a", "99", wecom_fake.media["MEDIA_1"])]
    assert wecom_fake.texts() == [VOICE_RECEIVED]
    assert conversation.calls == []


def test_oversized_voice_is_refused_politely_and_not_handed_on(
    bound_services, conversation, wecom_fake, client_for
):
    received = voice_hook(bound_services)
    bound_services.channels.wecom().client.max_media_bytes = 1024
    wecom_fake.media["BIG"] = b"x" * 4096
    wecom_post(client_for(bound_services), wecom_voice_xml("BIG"))
    wait_jobs(bound_services)

    assert received == []
    assert wecom_fake.texts() == [MEDIA_TOO_LARGE]


def test_a_bad_signature_is_403_stores_nothing_and_logs_no_body(
    bound_services, conversation, wecom_fake, client_for, caplog
):
    enc = wecom_crypto().encrypt(wecom_text_xml("机密报价 123 万"))
    with caplog.at_level(logging.DEBUG):
        response = wecom_post_envelope(
            client_for(bound_services),
            enc.encrypt,
            signature="f" * 40,
            timestamp=enc.timestamp,
            nonce=enc.nonce,
        )

    assert response.status_code == 403 and response.json()["error"] == "bad_signature"
    assert _stored(bound_services) == [] and wecom_fake.sent == []
    assert enc.encrypt not in caplog.text and "机密报价" not in caplog.text


def test_a_stale_timestamp_is_rejected_as_a_replay(bound_services, conversation, wecom_fake, client_for):
    response = wecom_post(
        client_for(bound_services), wecom_text_xml("旧消息"), timestamp=int(time.time()) - 3600
    )

    assert response.status_code == 403 and response.json()["error"] == "stale_timestamp"
    assert _stored(bound_services) == []


def test_truncated_ciphertext_with_a_valid_signature_is_400(bound_services, conversation, client_for):
    crypto = wecom_crypto()
    enc = crypto.encrypt(wecom_text_xml("你好"))
    truncated = enc.encrypt[:-24]
    signature = crypto.signature(enc.timestamp, enc.nonce, truncated)
    response = wecom_post_envelope(
        client_for(bound_services), truncated, signature=signature, timestamp=enc.timestamp, nonce=enc.nonce
    )

    assert response.status_code == 400 and response.json()["error"] == "bad_message"
    assert _stored(bound_services) == []


def test_malformed_and_hostile_xml_bodies_are_400(bound_services, conversation, client_for):
    client = client_for(bound_services)
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<xml><Encrypt>&b;</Encrypt></xml>"
    )
    for body in ("<xml><Encrypt>", "not xml at all", bomb, "<xml><ToUserName>x</ToUserName></xml>"):
        response = wecom_post_envelope(
            client, "", signature="0" * 40, timestamp=str(int(time.time())), nonce="n", body=body
        )
        assert response.status_code == 400, body
        assert response.json()["error"] == "bad_message"


def test_a_decrypted_message_that_is_not_valid_xml_is_400(bound_services, conversation, client_for):
    response = wecom_post(client_for(bound_services), "<xml><FromUserName>lilei")

    assert response.status_code == 400
    assert _stored(bound_services) == []


def test_oversized_callback_body_is_413(bound_services, client_for):
    response = wecom_post_envelope(
        client_for(bound_services),
        "",
        signature="0" * 40,
        timestamp="1",
        nonce="n",
        body="<xml>" + "a" * 70_000 + "</xml>",
    )

    assert response.status_code == 413


def test_an_unconfigured_channel_answers_503_naming_the_variable(crm_services, client_for):
    crm_services.settings.wecom.aes_key = None
    response = client_for(crm_services).get(
        "/channels/wecom/callback",
        params={"msg_signature": "x", "timestamp": "1", "nonce": "n", "echostr": "e"},
    )

    assert response.status_code == 503
    assert response.json()["error"] == "channel_not_configured"
    assert "请设置 COPILOT_WECOM_AES_KEY" in response.json()["detail"]

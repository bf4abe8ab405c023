"""DingTalk enterprise robot (HTTP callback mode) end to end: real app, signed headers, a fake DingTalk."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from copilot.features.channels.inbox import channel_messages
from copilot.features.channels.render import VOICE_RECEIVED
from tests.copilot.channels.conftest import DING_STAFF, ding_headers, ding_text, voice_hook, wait_jobs


def _post(client, body, **header_kwargs):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return client.post("/channels/dingtalk/callback", content=raw, headers=ding_headers(**header_kwargs))


def _stored(services) -> list[dict]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(channel_messages)).mappings()]


def test_text_is_acked_fast_and_answered_through_the_session_webhook(
    bound_services, conversation, dingtalk_fake, client_for
):
    client = client_for(bound_services)
    started = time.perf_counter()
    response = _post(client, ding_text(dingtalk_fake, " 客户嫌贵怎么回？"))
    elapsed = time.perf_counter() - started

    assert response.status_code == 200 and response.json() == {}
    assert elapsed < 1.0
    [reply] = dingtalk_fake.wait_for_replies(1)
    assert "先认同客户对成本的关注" in reply and "依据《价格异议话术》2026-03-01 §1" in reply
    assert dingtalk_fake.session_sent[0]["session"] == "s1" and dingtalk_fake.batch_sent == []
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")]


def test_an_expired_session_webhook_falls_back_to_batch_send(
    bound_services, conversation, dingtalk_fake, client_for
):
    body = ding_text(dingtalk_fake, "你好", sessionWebhookExpiredTime=int(time.time() * 1000) - 1000)
    _post(client_for(bound_services), body)
    dingtalk_fake.wait_for_replies(1)
    wait_jobs(bound_services)

    [sent] = dingtalk_fake.batch_sent
    assert sent["body"]["robotCode"] == "dingrobot" and sent["body"]["userIds"] == [DING_STAFF]
    assert sent["body"]["msgKey"] == "sampleText"
    assert "先认同客户对成本的关注" in json.loads(sent["body"]["msgParam"])["content"]
    assert dingtalk_fake.session_sent == []


def test_a_session_webhook_on_a_foreign_host_is_never_called(
    bound_services, conversation, dingtalk_fake, client_for
):
    body = ding_text(
        dingtalk_fake, "你好", sessionWebhook="http://127.0.0.2:9/robot/sendBySession?session=evil"
    )
    _post(client_for(bound_services), body)
    dingtalk_fake.wait_for_replies(1)

    assert len(dingtalk_fake.batch_sent) == 1 and dingtalk_fake.session_sent == []


def test_the_same_msgid_delivered_three_times_gets_exactly_one_reply(
    bound_services, conversation, dingtalk_fake, client_for
):
    client = client_for(bound_services)
    body = ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgDUP")
    assert [_post(client, body).status_code for _ in range(3)] == [200, 200, 200]
    wait_jobs(bound_services)

    assert len(dingtalk_fake.session_sent) == 1
    assert len(conversation.calls) == 1
    assert [r["status"] for r in _stored(bound_services)] == ["replied"]


def test_audio_is_downloaded_by_download_code_and_handed_to_the_voice_hook(
    bound_services, conversation, dingtalk_fake, client_for
):
    received = voice_hook(bound_services)
    dingtalk_fake.files["DL_1"] = b"#!AMR\n" + b"\x01" * 500
    body = ding_text(dingtalk_fake, "", msg_id="msgAUDIO")
    del body["text"]
    body.update(
        msgtype="audio", content={"downloadCode": "DL_1", "recognition": "明天去拜访张总", "duration": 4000}
    )
    _post(client_for(bound_services), body)
    wait_jobs(bound_services)

    assert received == [("rep_a", "msgAUDIO", dingtalk_fake.files["DL_1"])]
    assert dingtalk_fake.replies() == [VOICE_RECEIVED]


def test_unknown_staff_is_asked_to_have_the_admin_bind_the_account(
    bound_services, conversation, dingtalk_fake, client_for
):
    _post(client_for(bound_services), ding_text(dingtalk_fake, "你好", staff="nobody"))
    [reply] = dingtalk_fake.wait_for_replies(1)

    assert "钉钉账号" in reply and "管理员" in reply and "绑定" in reply
    assert conversation.calls == []


def test_a_wrong_sign_is_403_and_nothing_is_stored(bound_services, conversation, dingtalk_fake, client_for):
    response = _post(client_for(bound_services), ding_text(dingtalk_fake, "你好"), secret="not-the-secret")

    assert response.status_code == 403 and response.json()["error"] == "bad_signature"
    assert _stored(bound_services) == []


def test_missing_signature_headers_are_403(bound_services, client_for):
    response = client_for(bound_services).post("/channels/dingtalk/callback", content=b"{}")

    assert response.status_code == 403


def test_a_stale_timestamp_is_rejected_as_a_replay(bound_services, conversation, dingtalk_fake, client_for):
    old = int(time.time() * 1000) - 2 * 3600 * 1000
    response = _post(client_for(bound_services), ding_text(dingtalk_fake, "你好"), timestamp_ms=old)

    assert response.status_code == 403 and response.json()["error"] == "stale_timestamp"
    assert _stored(bound_services) == []


def test_malformed_json_is_400(bound_services, conversation, dingtalk_fake, client_for):
    client = client_for(bound_services)
    for raw in (b"{not json", b"[]", json.dumps({"msgtype": "text"}).encode()):
        response = _post(client, raw)
        assert response.status_code == 400, raw
        assert response.json()["error"] == "bad_message"
    assert _stored(bound_services) == []


def test_an_unconfigured_dingtalk_answers_503_naming_the_variables(crm_services, client_for):
    crm_services.settings.dingtalk.app_secret = None
    response = client_for(crm_services).post(
        "/channels/dingtalk/callback", content=b"{}", headers=ding_headers()
    )

    assert response.status_code == 503
    assert "COPILOT_DINGTALK_APP_SECRET" in response.json()["detail"]

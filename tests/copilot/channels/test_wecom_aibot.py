"""WeCom AI bot (智能机器人) end to end: the real app served on 127.0.0.1, a fake WeCom that posts
encrypted callbacks, polls the stream reply until it is finished and takes response_url posts."""

from __future__ import annotations

import json
import logging
import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from connectors.channels.base import ChannelRejected, MalformedMessage
from connectors.channels.crypto import MessageCrypto
from connectors.channels.wecom_aibot import (
    MAX_CONTENT_BYTES,
    ResponseURLClient,
    WeComAIBot,
    clip,
    parse_message,
    strip_mention,
)
from copilot.api.app import create_app
from copilot.container import build_container
from copilot.features.channels.aibot import EMPTY_QUESTION, STREAM_GONE, THINKING, channel_streams
from copilot.features.channels.inbox import channel_messages
from copilot.features.channels.render import UNSUPPORTED
from copilot.settings import Settings
from copilot.worker import tasks as worker_tasks
from tests.copilot.channels.conftest import wait_jobs
from tests.fakes.fake_wecom_aibot import FakeWeComAIBot
from tests.support.servers import serve_in_thread

AIBOT_TOKEN = "aibotTok3n"  # noqa: S105 -- test value
AIBOT_AES_KEY = "nqDqntI6xo+r6keP6bEDLFETZp6bNh4RkolXB8RpZpE"
CITATION = "依据《价格异议话术》2026-03-01 §1"


def configure(services, fake: FakeWeComAIBot, *, push: str = "late") -> None:
    cfg = services.settings.wecom
    cfg.aibot_token, cfg.aibot_aes_key, cfg.aibot_push = AIBOT_TOKEN, AIBOT_AES_KEY, push
    cfg.api_base = fake.url  # response_url must be on the configured WeCom API origin


@pytest.fixture
def wecom():
    with FakeWeComAIBot.running(token=AIBOT_TOKEN, aes_key=AIBOT_AES_KEY) as fake:
        yield fake


@pytest.fixture
def app_url(bound_services, wecom):
    """The real app on 127.0.0.1 with the AI bot configured; the fake posts its callbacks there."""
    configure(bound_services, wecom)
    with serve_in_thread(create_app(bound_services)) as base:
        wecom.callback_url = f"{base}/channels/wecom-aibot/callback"
        yield base


def rows(services, table) -> list[dict]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def aibot_rows(services) -> tuple[list[dict], list[dict]]:
    messages = [r for r in rows(services, channel_messages) if r["channel"] == "wecom_aibot"]
    return messages, rows(services, channel_streams)


# -- the whole exchange ------------------------------------------------------------------------------------


def test_group_question_is_acked_with_a_stream_at_once_and_the_stream_ends_with_a_cited_answer(
    bound_services, conversation, wecom, app_url
):
    delivery = wecom.send_text("@销售副驾 客户嫌贵怎么回？", msg_id="msg-group-1")

    assert delivery.status == 200
    assert delivery.elapsed_s < 1.0, delivery.elapsed_s
    print(f"ack {delivery.elapsed_s * 1000:.1f} ms")
    stream_id = delivery.stream["id"]
    assert delivery.stream == {"id": stream_id, "finish": False, "content": THINKING}

    frames = wecom.poll(stream_id)
    final = frames[-1]
    assert final["finish"] is True
    assert "先认同客户对成本的关注" in final["content"] and CITATION in final["content"]
    assert all(not f["finish"] for f in frames[:-1])
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")]  # the @mention is not part of the question

    wait_jobs(bound_services)
    [message], [stream] = aibot_rows(bound_services)
    assert (message["msg_id"], message["kind"], message["status"], message["user_id"]) == (
        "msg-group-1",
        "text",
        "replied",
        "rep_a",
    )
    assert (stream["stream_id"], stream["finished"], stream["msg_id"]) == (stream_id, True, "msg-group-1")
    assert wecom.responses == []  # answered within WeCom's polling window: the stream is enough


def test_the_same_msgid_delivered_three_times_gets_one_stream_one_job_and_one_answer(
    bound_services, conversation, wecom, app_url
):
    configure(bound_services, wecom, push="always")
    message = wecom.text_message("@销售副驾 客户嫌贵怎么回？", msg_id="msg-retried")
    # WeCom retries with a fresh nonce, timestamp and signature; msgid and response_url stay the same.
    deliveries = [wecom.post(message) for _ in range(3)]

    assert [d.status for d in deliveries] == [200, 200, 200]
    assert len({d.stream["id"] for d in deliveries}) == 1
    stream_id = deliveries[0].stream["id"]
    final = wecom.poll(stream_id)[-1]
    wait_jobs(bound_services)
    assert len(conversation.calls) == 1
    messages, streams = aibot_rows(bound_services)
    assert len(messages) == 1 and len(streams) == 1
    [pushed] = wecom.wait_for_responses(1)
    assert pushed["body"] == {"msgtype": "markdown", "markdown": {"content": final["content"]}}
    assert CITATION in pushed["body"]["markdown"]["content"]

    late = wecom.post(message)  # a fourth delivery after the answer: the finished stream, nothing new
    assert late.stream == {"id": stream_id, "finish": True, "content": final["content"]}
    wait_jobs(bound_services)
    assert len(conversation.calls) == 1 and len(wecom.responses) == 1


def test_concurrent_deliveries_of_one_msgid_share_one_stream(bound_services, conversation, wecom, app_url):
    message = wecom.text_message("客户嫌贵怎么回？", msg_id="msg-concurrent")
    with ThreadPoolExecutor(max_workers=4) as pool:
        deliveries = list(pool.map(lambda _: wecom.post(message), range(4)))
    wait_jobs(bound_services)

    assert [d.status for d in deliveries] == [200] * 4
    assert len({d.stream["id"] for d in deliveries}) == 1
    assert len(conversation.calls) == 1
    assert [len(r) for r in aibot_rows(bound_services)] == [1, 1]


def test_an_answer_ready_after_wecom_stopped_polling_is_posted_to_response_url(
    bound_services, conversation, wecom, app_url
):
    bound_services.aibot.stream_window_s = 0.0  # every answer is "late"
    delivery = wecom.send_text("@销售副驾 客户嫌贵怎么回？", msg_id="msg-late")
    wait_jobs(bound_services)

    [pushed] = wecom.wait_for_responses(1)
    assert pushed["body"]["msgtype"] == "markdown"
    assert CITATION in pushed["body"]["markdown"]["content"]
    assert wecom.refresh(delivery.stream["id"]).stream["content"] == pushed["body"]["markdown"]["content"]


def test_a_failing_response_url_does_not_lose_the_answer(
    bound_services, conversation, wecom, app_url, caplog
):
    configure(bound_services, wecom, push="always")
    wecom.fail_next_response(500)
    with caplog.at_level(logging.INFO):
        delivery = wecom.send_text("客户嫌贵怎么回？", msg_id="msg-push-fails", chat_type="single")
        wait_jobs(bound_services)

    assert wecom.responses == []
    final = wecom.poll(delivery.stream["id"])[-1]
    assert CITATION in final["content"]
    assert aibot_rows(bound_services)[0][0]["status"] == "replied"
    assert "not pushed to response_url" in caplog.text and "先认同" not in caplog.text


def test_a_response_url_off_the_configured_wecom_origin_is_never_called(
    bound_services, conversation, wecom, app_url
):
    configure(bound_services, wecom, push="always")
    message = wecom.text_message("客户嫌贵怎么回？", msg_id="msg-foreign-url")
    message["response_url"] = "http://evil.invalid/cgi-bin/aibot/response?response_code=x"
    delivery = wecom.post(message)
    wait_jobs(bound_services)

    assert CITATION in wecom.poll(delivery.stream["id"])[-1]["content"]
    assert wecom.responses == []


def test_refreshes_are_answered_from_the_database_by_any_api_process(
    bound_services, conversation, wecom, app_url
):
    """A second app process on the same database (no shared memory) serves the stream refreshes."""
    other = build_container(Settings())
    configure(other, wecom)
    try:
        with serve_in_thread(create_app(other)) as other_base:
            delivery = wecom.send_text("客户嫌贵怎么回？", msg_id="msg-two-processes")
            wait_jobs(bound_services)
            wecom.callback_url = f"{other_base}/channels/wecom-aibot/callback"
            final = wecom.poll(delivery.stream["id"])[-1]
            again = wecom.send_text("客户嫌贵怎么回？", msg_id="msg-two-processes")
    finally:
        other.engine.dispose()

    assert CITATION in final["content"]
    assert again.stream == final  # the repeat reached the other process: same stream, no second job
    assert len(conversation.calls) == 1


def test_a_model_answer_is_shown_in_the_stream_as_it_is_written(bound_services, wecom, app_url):
    from copilot.domain import ChatAnswer

    seen: list[str] = []

    class Streaming:  # a model writing its answer: the refreshes see it grow, then the finished answer
        def reply(self, user, message, *, on_delta=None, **_ignored):
            on_delta("先认同客户对成本的关注，")
            seen.extend(r["content"] for r in rows(bound_services, channel_streams))
            return ChatAnswer("先认同客户对成本的关注，再算三年总账。", ())

    bound_services.provide("conversation", Streaming())
    delivery = wecom.send_text("客户嫌贵怎么回？", msg_id="msg-streaming")
    final = wecom.poll(delivery.stream["id"])[-1]

    assert seen == ["先认同客户对成本的关注，…"]
    assert final["finish"] is True and final["content"].startswith("先认同客户对成本的关注，再算三年总账。")


class RemoteQueue:
    """A job queue whose jobs run in other processes: it keeps them (pickled, as Redis would)."""

    remote = True

    def __init__(self) -> None:
        self.jobs: list[tuple] = []

    def submit(self, task, *args) -> None:
        self.jobs.append((task, pickle.loads(pickle.dumps(args))))


def test_on_a_remote_queue_the_answer_runs_by_name_on_a_worker_with_its_own_services(
    bound_services, wecom, app_url, monkeypatch
):
    monkeypatch.setenv("COPILOT_WECOM_AIBOT_TOKEN", AIBOT_TOKEN)  # the worker reads its settings from env
    monkeypatch.setenv("COPILOT_WECOM_AIBOT_AES_KEY", AIBOT_AES_KEY)
    monkeypatch.setattr(worker_tasks, "_container", [])  # a fresh worker process
    queue = RemoteQueue()
    bound_services.aibot.jobs = queue
    delivery = wecom.send_text("你好", msg_id="msg-remote", user="stranger")

    [(task, args)] = queue.jobs
    assert task == "answer_aibot"
    try:
        worker_tasks.run_task(task, *args)  # what `copilot worker` does
        worker_tasks.run_task(task, *args)  # delivered twice (at least once): the answer is written once
    finally:
        worker_tasks.worker_container().engine.dispose()
    final = wecom.poll(delivery.stream["id"])[-1]
    assert "绑定" in final["content"]
    assert aibot_rows(bound_services)[0][0]["status"] == "unbound"


# -- what is answered --------------------------------------------------------------------------------------


def test_voice_is_answered_from_the_transcript_wecom_sends(bound_services, conversation, wecom, app_url):
    delivery = wecom.post(wecom.voice_message("客户说预算不够怎么办", msg_id="msg-voice"))
    final = wecom.poll(delivery.stream["id"])[-1]

    assert conversation.calls == [("rep_a", "客户说预算不够怎么办")]
    assert CITATION in final["content"]
    wait_jobs(bound_services)
    assert aibot_rows(bound_services)[0][0]["kind"] == "voice"


def test_unknown_user_is_asked_to_have_the_admin_bind_the_account(
    bound_services, conversation, wecom, app_url
):
    delivery = wecom.send_text("@销售副驾 你好", msg_id="msg-stranger", user="stranger")
    final = wecom.poll(delivery.stream["id"])[-1]
    wait_jobs(bound_services)

    assert delivery.status == 200
    assert final["finish"] and "管理员" in final["content"] and "绑定" in final["content"]
    assert conversation.calls == []
    [message], _ = aibot_rows(bound_services)
    assert (message["status"], message["user_id"]) == ("unbound", None)


def test_other_message_types_get_the_polite_unsupported_reply(bound_services, conversation, wecom, app_url):
    delivery = wecom.post(wecom.image_message(msg_id="msg-image"))

    assert wecom.poll(delivery.stream["id"])[-1]["content"] == UNSUPPORTED
    assert conversation.calls == []


def test_a_bare_mention_is_asked_for_the_question(bound_services, conversation, wecom, app_url):
    delivery = wecom.send_text("@销售副驾 ", msg_id="msg-bare")

    assert wecom.poll(delivery.stream["id"])[-1]["content"] == EMPTY_QUESTION
    assert conversation.calls == []


def test_a_refresh_of_an_unknown_stream_is_finished_with_a_notice(bound_services, wecom, app_url):
    delivery = wecom.refresh("cp-no-such-stream")

    assert delivery.stream == {"id": "cp-no-such-stream", "finish": True, "content": STREAM_GONE}


def test_events_get_an_empty_reply_and_store_nothing(bound_services, wecom, app_url):
    event = {
        "msgid": "evt-1",
        "aibotid": wecom.aibot_id,
        "chattype": "single",
        "from": {"userid": "lilei"},
        "msgtype": "event",
        "event": {"eventtype": "enter_chat"},
    }
    delivery = wecom.post(event)

    assert delivery.status == 200 and delivery.response.content == b""
    assert aibot_rows(bound_services) == ([], [])


# -- URL verification and bad input -------------------------------------------------------------------------


def test_url_verification_answers_the_decrypted_echostr_as_plain_text(bound_services, wecom, app_url):
    response = wecom.verify_url("1616140317555161061")

    assert response.status_code == 200
    assert response.text == "1616140317555161061"
    assert response.headers["content-type"].startswith("text/plain")


def test_url_verification_with_a_bad_signature_or_old_timestamp_is_403(bound_services, wecom, app_url):
    bad = wecom.verify_url("echo", signature="0" * 40)
    stale = wecom.verify_url("echo", timestamp=int(time.time()) - 3600)

    assert (bad.status_code, bad.json()["error"]) == (403, "bad_signature")
    assert (stale.status_code, stale.json()["error"]) == (403, "stale_timestamp")


def test_a_bad_signature_is_403_stores_nothing_and_logs_no_body(
    bound_services, conversation, wecom, app_url, caplog
):
    with caplog.at_level(logging.DEBUG):
        delivery = wecom.post(wecom.text_message("机密报价 123 万"), signature="f" * 40)

    assert (delivery.status, delivery.response.json()["error"]) == (403, "bad_signature")
    assert aibot_rows(bound_services) == ([], []) and conversation.calls == []
    assert "机密报价" not in caplog.text


def test_a_message_encrypted_for_another_receive_id_is_403(bound_services, conversation, wecom, app_url):
    corp_app = MessageCrypto(AIBOT_TOKEN, AIBOT_AES_KEY, "wwcorp0001")  # the self-built app's receive id
    delivery = wecom.post(wecom.text_message("你好"), crypto=corp_app)

    assert (delivery.status, delivery.response.json()["error"]) == (403, "bad_signature")
    assert aibot_rows(bound_services) == ([], [])


def test_a_stale_timestamp_is_rejected_as_a_replay(bound_services, conversation, wecom, app_url):
    delivery = wecom.post(wecom.text_message("旧消息"), timestamp=int(time.time()) - 3600)

    assert (delivery.status, delivery.response.json()["error"]) == (403, "stale_timestamp")
    assert aibot_rows(bound_services) == ([], [])


def test_truncated_ciphertext_with_a_valid_signature_is_400(bound_services, conversation, wecom, app_url):
    enc = wecom.crypto.encrypt(json.dumps(wecom.text_message("你好")))
    truncated = enc.encrypt[:-24]
    signature = wecom.crypto.signature(enc.timestamp, enc.nonce, truncated)
    response = wecom._http.post(
        wecom.callback_url,
        params={"msg_signature": signature, "timestamp": enc.timestamp, "nonce": enc.nonce},
        content=json.dumps({"encrypt": truncated}),
    )

    assert (response.status_code, response.json()["error"]) == (400, "bad_message")
    assert aibot_rows(bound_services) == ([], [])


@pytest.mark.parametrize(
    "body", ["not json", "[]", "{}", '{"encrypt": 5}', '{"encrypt": ""}', '{"encrypt": "abc"', "[" * 100_000]
)
def test_malformed_envelopes_are_400(bound_services, wecom, app_url, body):
    response = wecom._http.post(
        wecom.callback_url,
        params={"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "n"},
        content=body[:60_000],
    )

    assert (response.status_code, response.json()["error"]) == (400, "bad_message")


@pytest.mark.parametrize(
    "plain",
    [
        "<xml><MsgType>text</MsgType></xml>",
        '{"msgtype": "text", "text": {"content": "没有发送者"}, "msgid": "m"}',
        '{"msgtype": "text", "from": {"userid": "lilei"}, "text": {"content": "没有 msgid"}}',
        '{"msgtype": "stream", "from": {"userid": "lilei"}, "msgid": "m", "stream": {}}',
    ],
)
def test_a_decrypted_message_that_is_not_a_valid_callback_is_400(
    bound_services, conversation, wecom, app_url, plain
):
    delivery = wecom.post(plain)

    assert (delivery.status, delivery.response.json()["error"]) == (400, "bad_message")
    assert aibot_rows(bound_services) == ([], [])


def test_oversized_callback_body_is_413(bound_services, wecom, app_url):
    response = wecom._http.post(
        wecom.callback_url,
        params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n"},
        content=json.dumps({"encrypt": "a" * 70_000}),
    )

    assert response.status_code == 413


def test_an_unconfigured_ai_bot_answers_503_naming_the_variables(crm_services, client_for):
    response = client_for(crm_services).post(
        "/channels/wecom-aibot/callback",
        params={"msg_signature": "x", "timestamp": "1", "nonce": "n"},
        content=b'{"encrypt": "x"}',
    )

    assert response.status_code == 503
    assert response.json()["error"] == "channel_not_configured"
    assert "COPILOT_WECOM_AIBOT_TOKEN" in response.json()["detail"]
    assert "COPILOT_WECOM_AIBOT_AES_KEY" in response.json()["detail"]


def test_an_unknown_push_mode_answers_503_listing_the_valid_ones(crm_services, client_for):
    cfg = crm_services.settings.wecom
    cfg.aibot_token, cfg.aibot_aes_key, cfg.aibot_push = AIBOT_TOKEN, AIBOT_AES_KEY, "sometimes"
    response = client_for(crm_services).get(
        "/channels/wecom-aibot/callback",
        params={"msg_signature": "x", "timestamp": "1", "nonce": "n", "echostr": "e"},
    )

    assert response.status_code == 503
    assert "late, always, off" in response.json()["detail"]


# -- the adapter's pure parts ---------------------------------------------------------------------------------


def test_leading_mentions_are_stripped_and_the_rest_is_kept():
    assert strip_mention("@销售副驾 客户嫌贵怎么回？") == "客户嫌贵怎么回？"
    assert strip_mention("@销售副驾\u2005客户 @张三 的报价") == "客户 @张三 的报价"
    assert strip_mention("  @Bot @销售副驾 你好") == "你好"
    assert strip_mention("邮箱是 a@b.com") == "邮箱是 a@b.com"
    assert strip_mention("@销售副驾") == ""


def test_mentions_are_only_stripped_in_group_chats():
    single = {"msgid": "m", "msgtype": "text", "chattype": "single", "from": {"userid": "u"},
              "text": {"content": "@张三 的客户怎么跟进"}}  # fmt: skip
    group = {**single, "chattype": "group", "chatid": "c1", "text": {"content": "@销售副驾 @张三 怎么办"}}

    assert parse_message(json.dumps(single)).text == "@张三 的客户怎么跟进"
    parsed = parse_message(json.dumps(group))
    assert (parsed.text, parsed.chat_id, parsed.kind) == ("怎么办", "c1", "text")


def test_an_event_without_from_is_malformed():
    with pytest.raises(MalformedMessage):
        parse_message('{"msgtype": "event", "event": {"eventtype": "enter_chat"}}')


def test_long_content_is_clipped_within_the_byte_limit_at_a_line_break():
    text = "\n".join(f"第{i}条：先认同客户对成本的关注，再谈总拥有成本。" for i in range(2000))
    clipped = clip(text)

    assert len(clipped.encode()) <= MAX_CONTENT_BYTES
    assert clipped.endswith("（内容过长，已截断）")
    assert text.startswith(clipped.split("\n\n……")[0])


def test_the_stream_reply_round_trips_through_the_platform_crypto():
    bot = WeComAIBot(MessageCrypto(AIBOT_TOKEN, AIBOT_AES_KEY, ""))
    reply = bot.stream_reply("cp1", "**答**", finish=True, nonce="n1")

    plain = bot.crypto.decrypt(
        reply["encrypt"], signature=reply["msgsignature"], timestamp=reply["timestamp"], nonce=reply["nonce"]
    )
    assert json.loads(plain) == {
        "msgtype": "stream",
        "stream": {"id": "cp1", "finish": True, "content": "**答**"},
    }
    assert reply["nonce"] == "n1"


def test_the_ai_bot_refuses_a_non_empty_receive_id():
    with pytest.raises(ValueError, match="receive id"):
        WeComAIBot(MessageCrypto(AIBOT_TOKEN, AIBOT_AES_KEY, "wwcorp0001"))


def test_response_url_client_refuses_other_origins_before_connecting():
    client = ResponseURLClient(allowed_base="https://qyapi.weixin.qq.com")
    try:
        for url in (
            "https://evil.example/cgi-bin/aibot/response?response_code=x",
            "http://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=x",
            "https://qyapi.weixin.qq.com:8443/cgi-bin/aibot/response",
            "/cgi-bin/aibot/response",
        ):
            with pytest.raises(ChannelRejected):
                client.post_markdown(url, "你好")
    finally:
        client.close()


# -- against the real conversation and knowledge base (bundled embedder) -------------------------------------


@pytest.mark.models
def test_a_group_question_is_answered_with_a_cited_talk_track_from_the_knowledge_base(kb_services, wecom):
    kb_services.users.upsert_user(
        {"id": "rep_a", "name": "李雷", "role": "rep", "team_id": "t_a", "wecom_userid": "lilei"}
    )
    configure(kb_services, wecom, push="always")
    with serve_in_thread(create_app(kb_services)) as base:
        wecom.callback_url = f"{base}/channels/wecom-aibot/callback"
        delivery = wecom.send_text("@销售副驾 客户嫌贵怎么回？", msg_id="msg-kb")
        final = wecom.poll(delivery.stream["id"], timeout=60)[-1]
        [pushed] = wecom.wait_for_responses(1, timeout=30)

    assert delivery.status == 200 and delivery.elapsed_s < 1.0
    assert "价格异议话术" in final["content"] and "总拥有成本" in final["content"]
    assert pushed["body"]["markdown"]["content"] == final["content"]

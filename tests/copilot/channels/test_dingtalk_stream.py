"""DingTalk Stream mode end to end: the CLI's entry function (and the `copilot channels dingtalk-stream`
command itself) against a fake Stream gateway and the fake DingTalk API on 127.0.0.1, with the real
Stream client, channels service, database and jobs."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.channels import build_dingtalk_stream, run_dingtalk_stream
from copilot.cli.main import app
from copilot.features.channels.inbox import channel_messages
from tests.copilot.channels.conftest import ScriptedConversation, ding_text, wait_jobs
from tests.fakes.fake_dingtalk_stream import FakeDingTalkStream

BINDING_WORDS = ("钉钉账号", "管理员", "绑定")
LABEL = "依据《价格异议话术》2026-03-01 §1"


@pytest.fixture
def gateway(dingtalk_fake):
    """The Stream gateway; like api.dingtalk.com it also serves the robot APIs (the fake DingTalk)."""
    with FakeDingTalkStream.running(
        client_id="dingkey", client_secret="dingsecret", api=dingtalk_fake.app
    ) as gw:
        yield gw


@pytest.fixture
def start_stream(bound_services, gateway):
    """``start_stream()`` → the Stream client of ``bound_services``, served by the CLI's entry function
    on a thread and connected to the gateway; stopped (and checked to stop cleanly) afterwards."""
    running: list[tuple] = []

    def start(**options):
        bound_services.settings.dingtalk.api_base = gateway.url
        stream = build_dingtalk_stream(bound_services, backoff=(0.05, 0.2), **options)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                run_dingtalk_stream(bound_services, stream)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve, name="dingtalk-stream", daemon=True)
        thread.start()
        running.append((stream, thread, errors))
        gateway.wait_connected()
        return stream

    yield start
    for stream, thread, errors in running:
        stream.stop()
        thread.join(15)
        assert not thread.is_alive(), "the Stream client did not stop"
        assert errors == []


def _stored(services) -> list[dict]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(channel_messages)).mappings()]


def test_a_text_message_is_acked_at_once_and_answered_with_its_citation(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    start_stream()
    frame = gateway.push_robot_message(ding_text(dingtalk_fake, " 客户嫌贵怎么回？", msg_id="msgS1"))

    ack = gateway.wait_for_ack(frame)["ack"]
    latency = gateway.ack_latency(frame)
    [reply] = dingtalk_fake.wait_for_replies(1)

    print(f"\nStream ack latency: {latency * 1000:.1f} ms")
    assert latency < 1.0
    assert ack["code"] == 200 and ack["message"] == "OK"
    assert ack["headers"] == {"contentType": "application/json", "messageId": frame}
    assert json.loads(ack["data"]) == {"response": "OK"}
    assert "先认同客户对成本的关注" in reply and LABEL in reply
    assert dingtalk_fake.session_sent[0]["session"] == "s1" and dingtalk_fake.batch_sent == []
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")]
    assert gateway.open_requests[0]["subscriptions"] == [
        {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}
    ]


@pytest.mark.models
def test_a_question_over_stream_is_answered_from_the_knowledge_base_with_a_citation(
    kb_services, bound_services, gateway, dingtalk_fake, start_stream
):
    start_stream()
    gateway.push_robot_message(ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgKB"))

    [reply] = dingtalk_fake.wait_for_replies(1, timeout=30)

    assert "价格异议话术" in reply and "总拥有成本" in reply


class GatedConversation(ScriptedConversation):
    """Answers only once the test opens the gate: the ack must not wait for the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def reply(self, user, message, *, customer_id=None, **_ignored):
        assert self.gate.wait(10), "the test never opened the gate"
        return super().reply(user, message, customer_id=customer_id)


def test_the_ack_is_sent_before_the_answer_is_computed(
    bound_services, gateway, dingtalk_fake, start_stream, monkeypatch
):
    slow = GatedConversation()
    bound_services.provide("conversation", slow)
    start_stream()
    frame = gateway.push_robot_message(ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgSLOW"))

    gateway.wait_for_ack(frame)
    assert gateway.ack_latency(frame) < 1.0
    assert dingtalk_fake.replies() == []  # still computing
    slow.gate.set()
    [reply] = dingtalk_fake.wait_for_replies(1)
    assert LABEL in reply


def test_the_same_message_pushed_three_times_gets_exactly_one_reply(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    start_stream()
    body = ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgDUP")
    frames = [gateway.push_robot_message(body) for _ in range(3)]

    acks = [gateway.wait_for_ack(f)["ack"] for f in frames]
    wait_jobs(bound_services)

    assert [a["code"] for a in acks] == [200, 200, 200]
    assert len(dingtalk_fake.replies()) == 1
    assert conversation.calls == [("rep_a", "客户嫌贵怎么回？")]
    assert [(r["msg_id"], r["status"]) for r in _stored(bound_services)] == [("msgDUP", "replied")]


def test_an_unknown_staff_id_only_gets_the_polite_binding_message(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    start_stream()
    gateway.push_robot_message(ding_text(dingtalk_fake, "你好", msg_id="msgWHO", staff="stranger01"))

    [reply] = dingtalk_fake.wait_for_replies(1)
    wait_jobs(bound_services)

    assert all(word in reply for word in BINDING_WORDS) and reply.startswith("您好")
    assert dingtalk_fake.replies() == [reply]
    assert conversation.calls == []
    assert [r["status"] for r in _stored(bound_services)] == ["unbound"]


def test_after_the_gateway_asks_to_disconnect_the_client_reconnects_and_keeps_answering(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    stream = start_stream()
    notice = gateway.disconnect()

    assert gateway.wait_for_ack(notice)["ack"]["code"] == 200
    gateway.wait_connected(2)
    gateway.push_robot_message(ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgAFTER"))

    [reply] = dingtalk_fake.wait_for_replies(1)
    assert LABEL in reply
    assert stream.connections == 2 and len(gateway.open_requests) == 2
    assert gateway.refused_tickets == 0  # a fresh ticket for every connection


def test_a_dropped_socket_is_reconnected_with_backoff_while_the_gateway_is_unavailable(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    start_stream()
    gateway.fail_opens = 2
    gateway.drop()

    gateway.wait_connected(2)
    gateway.push_robot_message(ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgDROP"))

    [reply] = dingtalk_fake.wait_for_replies(1)
    assert LABEL in reply
    assert len(gateway.open_requests) == 4  # the first connection, two refused by 503, the reconnection


def test_a_ping_is_acked_with_its_data(bound_services, gateway, start_stream):
    start_stream()
    ping = gateway.ping()

    ack = gateway.wait_for_ack(ping)["ack"]

    assert ack["code"] == 200 and ack["headers"]["messageId"] == ping
    assert set(json.loads(ack["data"])) == {"opaque"}


def test_a_frame_that_is_not_a_robot_message_is_acked_400_and_nothing_is_stored(
    bound_services, conversation, gateway, dingtalk_fake, start_stream
):
    start_stream()
    frame = gateway.push_robot_message({"msgtype": "text", "text": {"content": "没有 msgId"}})

    assert gateway.wait_for_ack(frame)["ack"]["code"] == 400
    assert _stored(bound_services) == [] and dingtalk_fake.replies() == []


# -- the `copilot channels dingtalk-stream` command itself ------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_command_answers_and_stops_cleanly_on_a_signal(
    bound_services, conversation, gateway, dingtalk_fake, stop_signal
):
    bound_services.settings.dingtalk.api_base = gateway.url
    common._services["s"] = bound_services
    failures: list[BaseException] = []

    def scenario() -> None:
        try:
            gateway.wait_connected()
            frame = gateway.push_robot_message(ding_text(dingtalk_fake, "客户嫌贵怎么回？", msg_id="msgCLI"))
            gateway.wait_for_ack(frame)
            dingtalk_fake.wait_for_replies(1)
        except BaseException as exc:
            failures.append(exc)
        finally:
            os.kill(os.getpid(), stop_signal)

    # A signal arriving after the command has restored the handlers must not end the test run.
    previous = signal.signal(stop_signal, lambda *_: None)
    try:
        helper = threading.Thread(target=scenario, daemon=True)
        helper.start()
        result = CliRunner().invoke(app, ["channels", "dingtalk-stream"])
        helper.join(15)
    finally:
        signal.signal(stop_signal, previous)

    assert failures == []
    assert result.exit_code == 0, result.output
    assert "已连接钉钉 Stream 网关" in result.output and "钉钉 Stream 模式已停止" in result.output
    assert LABEL in dingtalk_fake.replies()[0]
    assert gateway.acks[0]["ack"]["code"] == 200


def test_wrong_credentials_stop_the_command_with_a_clear_error(bound_services, gateway):
    bound_services.settings.dingtalk.api_base = gateway.url
    bound_services.settings.dingtalk.app_secret = "not-the-secret"
    common._services["s"] = bound_services

    result = CliRunner().invoke(app, ["channels", "dingtalk-stream"])

    assert result.exit_code == 2
    assert "钉钉拒绝建立 Stream 连接" in result.output and "clientId 或 clientSecret 无效" in result.output
    assert "COPILOT_DINGTALK_APP_SECRET" in result.output
    assert len(gateway.open_requests) == 1 and gateway.connections == 0  # refused once, not retried


def test_missing_configuration_names_the_variables_and_exits_2(crm_services, gateway):
    common._services["s"] = crm_services
    crm_services.settings.dingtalk.app_key = None
    crm_services.settings.dingtalk.app_secret = None

    result = CliRunner().invoke(app, ["channels", "dingtalk-stream"])

    assert result.exit_code == 2
    assert "COPILOT_DINGTALK_APP_KEY" in result.output and "COPILOT_DINGTALK_APP_SECRET" in result.output
    assert "未配置" in result.output
    assert gateway.open_requests == []

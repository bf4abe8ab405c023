"""`copilot channels …`: chat-platform connections that run as their own process (DESIGN §5.2).

    copilot channels dingtalk-stream     the DingTalk robot in Stream mode (no public IP needed)

Stream mode delivers the same robot messages as the HTTP callback; each one is recorded once
(``ChannelsService.accept``: atomic dedup on the message id, then a job) and acked at once, and
the job answers through the usual DingTalk reply path (sessionWebhook, else batch send).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from copilot.cli.common import fail, services

if TYPE_CHECKING:
    from connectors.channels.dingtalk_stream import DingTalkStream
    from copilot.container import Container

app = typer.Typer(help="聊天渠道：以独立进程运行的渠道连接", no_args_is_help=True)

CONFIG_EXIT = 2
DRAIN_JOBS_S = 30.0
CHECK_CREDENTIALS = (
    "请检查 COPILOT_DINGTALK_APP_KEY（钉钉应用 AppKey / Client ID）和 "
    "COPILOT_DINGTALK_APP_SECRET（AppSecret / Client Secret），并确认机器人的消息接收模式为 Stream 模式"
)
_LOGGERS = ("connectors.channels.dingtalk_stream", "copilot.features.channels.service")


def build_dingtalk_stream(services: Container, **options: Any) -> DingTalkStream:
    """The Stream client wired to the channels service; ``AppError`` naming missing variables.

    ``options`` go to ``DingTalkStream`` (``backoff``, ``on_connected`` …).
    """
    from connectors.channels.dingtalk_stream import DingTalkStream  # the SDK costs ~0.5 s to import

    svc = services.channels
    svc.dingtalk()  # the reply path; fails here, before connecting, when AppKey/AppSecret are unset
    cfg = services.settings.dingtalk
    return DingTalkStream(
        client_id=cfg.app_key or "",
        client_secret=cfg.app_secret or "",
        api_base=cfg.api_base,
        on_message=svc.accept,
        **options,
    )


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call ``stop`` (main thread only; elsewhere the caller stops the stream)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _console_log() -> Iterator[None]:
    """Connection and reply events on stderr (ids only, never message text) while the command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    saved = []
    for name in _LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.level))
        log.addHandler(handler)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
    try:
        yield
    finally:
        for log, level in saved:
            log.removeHandler(handler)
            log.setLevel(level)


def run_dingtalk_stream(services: Container, stream: DingTalkStream) -> None:
    """Serve until the stream is stopped, then let replies already queued finish."""
    try:
        stream.start_forever()
    finally:
        if not services.jobs.wait_idle(DRAIN_JOBS_S):
            typer.secho("部分回复仍在处理中，未等其完成即退出", fg=typer.colors.YELLOW, err=True)


@app.command("dingtalk-stream")
def dingtalk_stream() -> None:
    """钉钉机器人 Stream 模式：主动连接钉钉，无需公网 IP 和回调地址（Ctrl-C 停止）。"""
    from connectors.channels.base import ChannelRejected
    from copilot.errors import AppError

    svc = services()
    try:
        stream = build_dingtalk_stream(svc)
    except AppError as error:
        fail(error.detail, code=CONFIG_EXIT)
    typer.echo("钉钉 Stream 模式启动中，按 Ctrl-C 停止…", err=True)
    with _console_log(), _stop_on_signals(stream.stop):
        try:
            run_dingtalk_stream(svc, stream)
        except ChannelRejected as error:
            fail(f"{error.message}。{CHECK_CREDENTIALS}", code=CONFIG_EXIT)
    typer.echo("钉钉 Stream 模式已停止", err=True)

"""Chat-platform callbacks (DESIGN §5.5). They authenticate by the platform's signature, not a token.

    GET  /channels/wecom/callback     URL verification: the decrypted echostr, as text/plain
    POST /channels/wecom/callback     encrypted message → empty 200 at once; the reply follows as a job
    POST /channels/dingtalk/callback  robot message (timestamp + sign headers) → {} at once; reply as a job
    GET  /channels/wecom-aibot/callback   AI bot URL verification: the decrypted echostr, as text/plain
    POST /channels/wecom-aibot/callback   AI bot message → an encrypted stream reply at once (the answer
                                          follows as a job; WeCom polls the stream until it is finished)

Rejections: bad signature 403 ``bad_signature``, timestamp outside the replay window 403
``stale_timestamp``, undecryptable or malformed body 400 ``bad_message``, body too large 413,
channel not configured 503 naming the variables. Request bodies are never logged.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.channels.base import MalformedMessage
from connectors.channels.crypto import CryptoError
from copilot.api.deps import ServicesDep
from copilot.errors import AppError, request_id

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/channels", tags=["channels"])

MAX_CALLBACK_BYTES = 64 * 1024
_FORBIDDEN = {"bad_signature", "receive_id_mismatch", "bad_timestamp"}
_STALE = {"expired_timestamp"}


def _rejected(channel: str, error: CryptoError | MalformedMessage, request: Request) -> AppError:
    if isinstance(error, CryptoError) and error.code in _FORBIDDEN:
        code, status, detail = "bad_signature", 403, "签名校验失败。"
    elif isinstance(error, CryptoError) and error.code in _STALE:
        code, status, detail = "stale_timestamp", 403, "时间戳超出允许的时间窗口（可能是重放请求）。"
    else:
        code, status = "bad_message", 400
        detail = f"消息无法解析：{error.message if isinstance(error, CryptoError) else error}"
    reason = error.code if isinstance(error, CryptoError) else "malformed"
    logger.warning("%s callback rejected: %s (request %s)", channel, reason, request_id(request))
    return AppError(code, detail, status=status)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        raise AppError("payload_too_large", "回调消息体过大。")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALLBACK_BYTES:
            raise AppError("payload_too_large", "回调消息体过大。")
    return body


@router.get("/wecom/callback", response_class=PlainTextResponse)
def wecom_verify_url(
    msg_signature: str, timestamp: str, nonce: str, echostr: str, services: ServicesDep, request: Request
) -> PlainTextResponse:
    channel = services.channels.wecom()
    try:
        echo = channel.verify_url(msg_signature, timestamp, nonce, echostr)
    except CryptoError as error:
        raise _rejected("wecom", error, request) from None
    return PlainTextResponse(echo)


@router.post("/wecom/callback", response_class=PlainTextResponse)
async def wecom_message(
    msg_signature: str, timestamp: str, nonce: str, services: ServicesDep, request: Request
) -> PlainTextResponse:
    body = await _body(request)

    def receive() -> None:
        svc = services.channels
        try:
            message = svc.wecom().parse_callback(
                body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce
            )
        except (CryptoError, MalformedMessage) as error:
            raise _rejected("wecom", error, request) from None
        svc.accept(message)

    await run_in_threadpool(receive)
    return PlainTextResponse("")


@router.post("/dingtalk/callback")
async def dingtalk_message(services: ServicesDep, request: Request) -> JSONResponse:
    body = await _body(request)
    timestamp = request.headers.get("timestamp", "")
    sign = request.headers.get("sign", "")

    def receive() -> None:
        svc = services.channels
        try:
            message = svc.dingtalk().parse_callback(body, timestamp=timestamp, sign=sign)
        except (CryptoError, MalformedMessage) as error:
            raise _rejected("dingtalk", error, request) from None
        svc.accept(message)

    await run_in_threadpool(receive)
    return JSONResponse({})


@router.get("/wecom-aibot/callback", response_class=PlainTextResponse)
def wecom_aibot_verify_url(
    msg_signature: str, timestamp: str, nonce: str, echostr: str, services: ServicesDep, request: Request
) -> PlainTextResponse:
    bot = services.aibot.bot
    try:
        echo = bot.verify_url(msg_signature, timestamp, nonce, echostr)
    except CryptoError as error:
        raise _rejected("wecom_aibot", error, request) from None
    return PlainTextResponse(echo)


@router.post("/wecom-aibot/callback")
async def wecom_aibot_message(
    msg_signature: str, timestamp: str, nonce: str, services: ServicesDep, request: Request
) -> Response:
    body = await _body(request)

    def receive() -> Response:
        aibot = services.aibot
        try:
            message = aibot.bot.parse_callback(
                body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce
            )
        except (CryptoError, MalformedMessage) as error:
            raise _rejected("wecom_aibot", error, request) from None
        state = aibot.receive(message)
        if state is None:  # events: an empty reply
            return PlainTextResponse("")
        return JSONResponse(
            aibot.bot.stream_reply(state.stream_id, state.content, finish=state.finished, nonce=nonce)
        )

    return await run_in_threadpool(receive)

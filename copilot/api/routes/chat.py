from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from copilot.api.deps import ConversationDep, UserDep
from copilot.errors import CATALOGUE, AppError, request_id

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    conversation_id: str | None = Field(default=None, max_length=64)
    customer_id: str | None = Field(default=None, max_length=64)
    as_of: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@router.post("/chat")
def chat(body: ChatRequest, user: UserDep, conversation: ConversationDep, request: Request) -> dict:
    answer = conversation.reply(user, body.message, customer_id=body.customer_id,
                                conversation_id=body.conversation_id, as_of=body.as_of)  # fmt: skip
    request.app.state.metrics.chat_answers.labels(answer.mode).inc()
    return answer.to_json()


_CHUNK = re.compile(r"[^。！？!?；;\n]*[。！？!?；;\n]+|[^。！？!?；;\n]+$")


def sentence_chunks(text: str) -> list[str]:
    """An answer cut after each sentence: how an offline answer is streamed."""
    return [m.group(0) for m in _CHUNK.finditer(text) if m.group(0)]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


_EVENT = {  # one server-sent event: ``data`` is the JSON of {"text"}, the /api/chat reply, or the error
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["delta", "final", "error"]},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}
_STREAM_DOC = {
    200: {
        "description": "event: delta {text} …, then event: final (the /api/chat reply) or event: error",
        "content": {"text/event-stream": {"schema": _EVENT}},
    }
}


@router.post("/chat/stream", response_class=StreamingResponse, responses=_STREAM_DOC)
async def chat_stream(body: ChatRequest, user: UserDep, conversation: ConversationDep, request: Request):
    """The same turn as ``POST /api/chat``, as ``text/event-stream``: ``delta`` events (``{"text"}``) as the
    answer is written, then one ``final`` event with the full reply (citations validated), or ``error``.
    A request refused before the turn starts (404 customer, 422 message) is the usual JSON error."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    streamed = threading.Event()

    def put(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed (shutting down): nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def on_delta(text: str) -> None:
        streamed.set()
        put("delta", text)

    def work() -> None:
        try:
            answer = conversation.reply(user, body.message, customer_id=body.customer_id,
                                        conversation_id=body.conversation_id, as_of=body.as_of,
                                        on_delta=on_delta)  # fmt: skip
        except AppError as exc:
            put("error", exc)
        except Exception as exc:  # shown as internal_error with the request id; logged here
            logger.exception("chat stream failed")
            put("error", exc)
        else:
            request.app.state.metrics.chat_answers.labels(answer.mode).inc()
            put("final", answer)

    threading.Thread(target=work, name="chat-stream", daemon=True).start()
    first = await queue.get()
    if first[0] == "error":
        raise first[1]  # nothing streamed yet: the JSON error of POST /api/chat
    rid = request_id(request)

    async def events() -> AsyncIterator[bytes]:
        kind, value = first
        while True:
            if kind == "delta":
                yield _event("delta", {"text": value})
            elif kind == "final":
                if not streamed.is_set():  # offline or single-shot: the answer, a sentence at a time
                    for piece in sentence_chunks(value.answer):
                        yield _event("delta", {"text": piece})
                yield _event("final", value.to_json())
                return
            else:
                code = value.code if isinstance(value, AppError) else "internal_error"
                detail = value.detail if isinstance(value, AppError) else CATALOGUE["internal_error"][1]
                yield _event("error", {"error": code, "detail": detail, "request_id": rid})
                return
            kind, value = await queue.get()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: do not buffer the events
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/chat/history")
def history(
    user: UserDep,
    conversation: ConversationDep,
    customer_id: str | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> dict:
    """The calling user's own conversation history (per user; optionally for one customer)."""
    return {"messages": conversation.history(user, customer_id=customer_id, limit=limit)}

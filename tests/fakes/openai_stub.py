"""An OpenAI-compatible fake server on 127.0.0.1, for the real ``openai`` SDK and ``langchain_openai``.

    with OpenAIStub.running() as stub:
        stub.enqueue("客户嫌贵时，先确认预算。")                           # plain reply
        stub.enqueue({"tool_calls": [{"name": "search_kb", "arguments": {"q": "价格"}}]})
        stub.enqueue(Fault.rate_limit(retry_after=2))                      # or server_error/hang/malformed/cut_stream
        client = openai.OpenAI(base_url=stub.url, api_key="test", max_retries=0)
        ...
        assert stub.requests[0].last_user_message == "客户嫌贵怎么回？"

Chat replies come from the queue first, then from ``stub.handler(request)``; with neither, the stub
answers HTTP 500 saying so. A reply is a ``str`` (the content), a ``dict`` with ``content`` (a str,
or any JSON value, which is dumped: handy for ``response_format``), ``tool_calls`` (``name`` and
``arguments`` as a dict or a JSON string) and ``finish_reason``, or a ``Fault``. Every reply is
served as a completion or, for ``stream: true``, as SSE chunks ending with ``data: [DONE]``.
``response_formats`` names the ``response_format`` types the stub accepts (default: all), so a test can
play an endpoint without JSON-schema support: any other type is refused with HTTP ``refuse_status``
(400 as DeepSeek and older servers do; llama-cpp-python answers 500); ``StubRequest.response_format`` and ``.json_schema`` show what was asked.
``/v1/embeddings`` returns deterministic bag-of-characters vectors (see ``fake_embedding``);
``enqueue(fault, endpoint="embeddings")`` injects a fault there. Token counts are characters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import math
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import serve_in_thread

__all__ = ["Fault", "OpenAIStub", "Reply", "StubRequest", "fake_embedding"]


_CUT_TEXT = "这是一段会在中途断开的回答，后面的内容不会到达。"


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure to serve instead of a reply. Build one with the class methods."""

    kind: Literal["http", "hang", "malformed", "cut"]
    status: int = 500
    retry_after: float | None = None
    seconds: float = 30.0
    content: str = _CUT_TEXT
    after_chunks: int = 2

    @classmethod
    def http(cls, status: int, *, retry_after: float | None = None) -> Fault:
        """An OpenAI-shaped error response with this status (401, 400, 503, ...)."""
        return cls("http", status=status, retry_after=retry_after)

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0) -> Fault:
        """HTTP 429 with a ``Retry-After`` header: ``openai.RateLimitError``."""
        return cls.http(429, retry_after=retry_after)

    @classmethod
    def server_error(cls) -> Fault:
        """HTTP 500: ``openai.InternalServerError``."""
        return cls.http(500)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Answer nothing for up to ``seconds`` (ends early when the client leaves or the stub stops)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """HTTP 200 whose JSON body (or SSE event, when streaming) is cut off and cannot be parsed."""
        return cls("malformed")

    @classmethod
    def cut_stream(cls, content: str | None = None, *, after_chunks: int = 2) -> Fault:
        """Send ``after_chunks`` chunks of ``content``, then drop the connection (no ``[DONE]``)."""
        return cls("cut", content=content or _CUT_TEXT, after_chunks=after_chunks)


Reply = str | Mapping[str, Any] | Fault


@dataclass(frozen=True, slots=True)
class StubRequest:
    """One request as the stub received it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def response_format(self) -> dict[str, Any] | None:
        value = self.body.get("response_format")
        return dict(value) if isinstance(value, Mapping) else None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema the request asked the answer to follow (``json_schema``, or llama.cpp's
        ``json_object`` + ``schema``), else None."""
        fmt = self.response_format or {}
        schema = (
            (fmt.get("json_schema") or {}).get("schema")
            if fmt.get("type") == "json_schema"
            else fmt.get("schema")
        )
        return dict(schema) if isinstance(schema, Mapping) else None

    @property
    def last_user_message(self) -> str | None:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return None


def fake_embedding(text: str | list[int], dimensions: int = 32) -> list[float]:
    """A unit vector counting hashed characters (or token ids): texts sharing characters are close."""
    vector = [0.0] * dimensions
    for token in text:
        if isinstance(token, str) and token.isspace():
            continue
        digest = hashlib.sha256(str(token).encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    vector = vector if any(vector) else [1.0] + [0.0] * (dimensions - 1)
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in vector))))


class _StreamCut(Exception):
    """Raised inside a streaming response so that uvicorn drops the connection mid-body."""


class _QuietStreamCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, _StreamCut) or "_StreamCut" in repr(exc))


class OpenAIStub:
    """The fake server's state: scripted replies, a ``handler`` hook and the ``requests`` it saw."""

    def __init__(
        self,
        *,
        handler: Callable[[StubRequest], Reply | None] | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small"),
        embedding_dimensions: int = 32,
        response_formats: tuple[str, ...] | None = None,
        refuse_status: int = 400,
    ) -> None:
        self.handler = handler
        self.response_formats = response_formats
        self.refuse_status = refuse_status
        self.models = models
        self.embedding_dimensions = embedding_dimensions
        self.url: str | None = None
        self._queues: dict[str, deque[Reply]] = {"chat": deque(), "embeddings": deque()}
        self._requests: list[StubRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[OpenAIStub]:
        """Serve a new stub on 127.0.0.1; ``stub.url`` is the base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        stub = cls(**kwargs)
        quiet = _QuietStreamCut()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        try:
            with serve_in_thread(stub.app) as base_url:
                stub.url = f"{base_url}/v1"
                try:
                    yield stub
                finally:
                    stub._closing.set()
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)

    def enqueue(self, *replies: Reply, endpoint: Literal["chat", "embeddings"] = "chat") -> None:
        """Queue replies for the next requests; the embeddings queue takes only ``Fault``s."""
        if endpoint == "embeddings" and not all(isinstance(r, Fault) for r in replies):
            raise TypeError("embeddings are computed by fake_embedding(); only a Fault can be queued there")
        with self._lock:
            self._queues[endpoint].extend(replies)

    @property
    def requests(self) -> list[StubRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._requests.clear()
            for queue in self._queues.values():
                queue.clear()

    # --- endpoints -------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        body, stub_request = await self._record(request)
        kind = (stub_request.response_format or {}).get("type")
        if (
            kind not in (None, "text")
            and self.response_formats is not None
            and kind not in self.response_formats
        ):
            allowed = ", ".join(["text", *self.response_formats])
            return self._error(
                self.refuse_status, f"response_format type must be one of {allowed}, but got: {kind}"
            )
        with self._lock:
            reply = self._queues["chat"].popleft() if self._queues["chat"] else None
        if reply is None and self.handler is not None:
            try:
                reply = self.handler(stub_request)
            except Exception as exc:
                return self._error(500, f"OpenAIStub handler raised {exc!r}")
        if reply is None:
            return self._error(500, "OpenAIStub: no reply enqueued and no handler set")
        stream, cut_after = bool(body.get("stream")), None
        if isinstance(reply, Fault):
            if reply.kind != "cut":
                return await self._fault(reply, request, stream=stream)
            reply, cut_after = {"content": reply.content}, reply.after_chunks
        completion = self._completion(body, reply)
        if stream:
            chunks = self._chunks(completion, include_usage=_include_usage(body))
            return StreamingResponse(
                _sse(chunks, cut_after), media_type="text/event-stream", headers=self._headers()
            )
        if cut_after is not None:
            raw = json.dumps(completion).encode()
            return StreamingResponse(_sse([raw[: len(raw) // 2]], 1, raw=True), media_type="application/json")
        return JSONResponse(completion, headers=self._headers())

    async def _embeddings(self, request: Request) -> Response:
        body, _ = await self._record(request)
        with self._lock:
            fault = self._queues["embeddings"].popleft() if self._queues["embeddings"] else None
        if isinstance(fault, Fault):
            return await self._fault(fault, request, stream=False)
        inputs = body.get("input", [])
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dimensions = int(body.get("dimensions") or self.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = fake_embedding(item, dimensions)
            encoded = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(item) for item in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", self.models[-1]),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return JSONResponse(payload, headers=self._headers())

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai-stub"}
            for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data}, headers=self._headers())

    # --- helpers ---------------------------------------------------------------------------

    async def _record(self, request: Request) -> tuple[dict[str, Any], StubRequest]:
        body = await request.json() if request.method == "POST" else {}
        recorded = StubRequest(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self._requests.append(recorded)
        return body, recorded

    async def _fault(self, fault: Fault, request: Request, *, stream: bool) -> Response:
        if fault.kind == "hang":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline and not self._closing.is_set():
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.02)
            return self._error(504, f"OpenAIStub hung for up to {fault.seconds}s")
        if fault.kind == "malformed":
            if stream:
                return Response('data: {"id": "chatcmpl-broken", "choi\n\n', media_type="text/event-stream")
            return Response(
                '{"id": "chatcmpl-broken", "object": "chat.completion", "choi', media_type="application/json"
            )
        headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return self._error(fault.status, f"OpenAIStub injected HTTP {fault.status}", headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        kind, code = {
            429: ("requests", "rate_limit_exceeded"),
            401: ("invalid_request_error", "invalid_api_key"),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        error = {"message": message, "type": kind, "param": None, "code": code}
        return JSONResponse({"error": error}, status_code=status, headers=self._headers() | (headers or {}))

    def _headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_stub_{next(self._ids)}"}

    def _completion(self, body: Mapping[str, Any], reply: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(reply, str):
            reply = {"content": reply}
        content = reply.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        calls = [_tool_call(call, next(self._ids)) for call in reply.get("tool_calls", [])]
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        prompt = sum(len(_text(m.get("content"))) for m in body.get("messages", []))
        completion = len(content or "") + sum(len(c["function"]["arguments"]) for c in calls)
        return {
            "id": f"chatcmpl-stub{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "system_fingerprint": "fp_openai_stub",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.get("finish_reason", "tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    @staticmethod
    def _chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
        base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"
        choice, message = completion["choices"][0], completion["choices"][0]["message"]

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            return base | {"choices": choices} | ({"usage": None} if include_usage else {})

        chunks = [chunk({"role": "assistant", "content": "" if message["content"] is not None else None})]
        chunks += [chunk({"content": piece}) for piece in _pieces(message["content"] or "")]
        for index, call in enumerate(message.get("tool_calls", [])):
            head = {"index": index, "id": call["id"], "type": "function"}
            chunks.append(
                chunk(
                    {"tool_calls": [head | {"function": {"name": call["function"]["name"], "arguments": ""}}]}
                )
            )
            for piece in _pieces(call["function"]["arguments"]):
                chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, choice["finish_reason"]))
        if include_usage:
            chunks.append(base | {"choices": [], "usage": completion["usage"]})
        return chunks


def _tool_call(call: Mapping[str, Any], n: int) -> dict[str, Any]:
    function = call.get("function", call)
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call.get("id", f"call_stub{n}"),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _include_usage(body: Mapping[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


async def _sse(events: list[Any], cut_after: int | None, *, raw: bool = False) -> AsyncIterator[bytes]:
    for index, event in enumerate(events):
        if index == cut_after:
            raise _StreamCut(f"OpenAIStub cut the stream after {cut_after} chunks")
        yield event if raw else f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
        await asyncio.sleep(0)
    if cut_after is not None:
        raise _StreamCut("OpenAIStub cut the stream")
    if not raw:
        yield b"data: [DONE]\n\n"

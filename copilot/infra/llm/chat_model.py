"""The chat-model port and its OpenAI-compatible adapter (OpenAI, DeepSeek, Qwen, Ollama, vLLM, llama.cpp …).

Errors (``LLMError.reason``) say what the caller should do, which is always "fall back to offline", and
are counted by reason:

    LLMError
    ├── reason "timeout"      the path's time budget ran out (not retried: a person or a job is waiting)
    ├── reason "unavailable"  connection refused, 5xx, 429 or an unreadable body (retried once)
    └── reason "refused"      the endpoint rejected the request (401/403/404, or 400 after every format)

Structured output: a request with an ``OutputSchema`` asks for ``response_format`` ``json_schema``
(OpenAI, vLLM guided decoding, Ollama, llama.cpp turn it into a grammar); an endpoint that rejects it
(HTTP 400/422, or any error naming ``response_format``: llama-cpp-python answers 500) is asked again
with ``json_object`` plus the schema (llama-cpp-python's grammar form),
then plain ``json_object``, then no ``response_format``. The first form the endpoint accepts is kept
for the life of the adapter.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# Paths: who is waiting decides the time budget.
CHAT, SUGGEST, EXTRACT = "chat", "suggest", "extract"
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "json_object_schema", "off")


class LLMError(Exception):
    """The endpoint failed or answered something unusable; callers fall back to offline mode."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """A JSON schema the answer must follow; ``name`` is what ``json_schema.name`` carries."""

    name: str
    schema: Mapping[str, Any]


Message = Mapping[str, str]  # {"role": "system|user|assistant", "content": "…"}


class ChatModel(Protocol):
    name: str
    context_tokens: int  # prompt + answer must fit in this many tokens

    def chat(
        self,
        messages: Sequence[Message],
        *,
        path: str = CHAT,
        schema: OutputSchema | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> str: ...

    def record(self, path: str, outcome: str) -> None:
        """Count how a path's answer ended: ``accepted``, ``repaired`` or a fallback reason."""


def _ladder(mode: str, schema: OutputSchema | None) -> list[dict[str, Any] | None]:
    """The ``response_format`` values to try, best first."""
    if mode == "off":
        return [None]
    if schema is None:
        return [{"type": "json_object"}, None] if mode != "off" else [None]
    strict = {"type": "json_schema", "json_schema": {"name": schema.name, "schema": dict(schema.schema)}}
    loose = {"type": "json_object", "schema": dict(schema.schema)}
    plain = {"type": "json_object"}
    if mode == "json_schema":
        return [strict]
    if mode == "json_object":
        return [plain]
    if mode == "json_object_schema":  # llama-cpp-python: the only form its server turns into a grammar
        return [loose, plain]
    return [strict, loose, plain, None]


class OpenAICompatibleChat:
    """The ``openai`` SDK against any OpenAI-compatible ``base_url``, with a time budget per path."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        timeout_s: float = 30.0,
        timeouts: Mapping[str, float] | None = None,
        context_tokens: int = 4096,
        response_format: str = "auto",
        temperature: float = 0.2,
        on_outcome: Callable[[str, str], None] | None = None,
        on_call: Callable[[str, float], None] | None = None,
    ) -> None:
        from openai import OpenAI

        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format {response_format!r}; valid: {', '.join(RESPONSE_FORMATS)}")
        self.name = model
        self.context_tokens = context_tokens
        self.timeout_s = timeout_s
        self.timeouts = dict(timeouts or {})
        self.response_format = response_format
        self.temperature = temperature
        self._on_outcome = on_outcome
        self._on_call = on_call
        # Retries are ours (one, and never after a timeout): the SDK would retry a timeout too.
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self._format_level: dict[bool, int] = {}  # with/without schema → index in the ladder that worked

    def timeout_for(self, path: str) -> float:
        return float(self.timeouts.get(path, self.timeout_s))

    def record(self, path: str, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(path, outcome)

    def complete(self, system: str, user: str, *, json_mode: bool = False, path: str = CHAT) -> str:
        """One system + user turn (kept for simple callers); ``json_mode`` asks for a JSON object."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if not json_mode:
            return self._call(messages, path=path, response_format=None, max_tokens=None)
        return self.chat(messages, path=path)

    def chat(
        self,
        messages: Sequence[Message],
        *,
        path: str = CHAT,
        schema: OutputSchema | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> str:
        ladder = _ladder(self.response_format, schema)
        level = self._format_level.get(schema is not None, 0)
        while True:
            try:
                reply = self._call(
                    messages,
                    path=path,
                    response_format=ladder[level],
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
            except _FormatRejected as exc:
                if level + 1 >= len(ladder):
                    raise LLMError("refused", exc.detail) from None
                level += 1
                logger.info("endpoint rejected a response_format; trying the next form (%d)", level)
                continue
            self._format_level[schema is not None] = level
            return reply

    def chat_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        timeout_s: float,
        path: str = CHAT,
        max_tokens: int | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> ToolTurn:
        """One round with ``tools`` offered (see ``chat_with_tools``)."""
        return chat_with_tools(
            self, messages, tools, timeout_s=timeout_s, path=path, max_tokens=max_tokens, on_delta=on_delta
        )

    # -- one HTTP exchange, with our retry policy ---------------------------------------------------

    def _call(
        self,
        messages: Sequence[Message],
        *,
        path: str,
        response_format: dict[str, Any] | None,
        max_tokens: int | None,
        temperature: float | None = None,
    ) -> str:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "temperature": self.temperature if temperature is None else temperature,
        }
        if response_format is not None:
            kwargs["response_format"] = response_format
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        timeout = self.timeout_for(path)
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            start = time.monotonic()
            try:
                completion = self._client.chat.completions.create(
                    **kwargs, timeout=max(0.5, deadline - start)
                )
            except openai.APITimeoutError:
                self._timed(path, start)
                logger.warning("llm call on path %s timed out after %.0f s", path, timeout)
                raise LLMError("timeout", f"{timeout:g} s") from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                self._timed(path, start)
                if response_format is not None:
                    raise _FormatRejected(f"HTTP {exc.status_code}") from None
                raise LLMError("refused", f"HTTP {exc.status_code}") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                self._timed(path, start)
                if response_format is not None and _names_response_format(exc):
                    raise _FormatRejected(f"HTTP {getattr(exc, 'status_code', '?')}") from None
                wait = _retry_after(exc)
                if attempt == 2 or time.monotonic() + wait >= deadline:
                    logger.warning("llm call on path %s failed: %s", path, type(exc).__name__)
                    raise LLMError("unavailable", type(exc).__name__) from None
                time.sleep(wait)
                continue
            except openai.APIStatusError as exc:  # 401, 403, 404 …: retrying will not help
                self._timed(path, start)
                if response_format is not None and _names_response_format(exc):
                    raise _FormatRejected(f"HTTP {exc.status_code}") from None
                logger.warning("llm endpoint refused the call: HTTP %s", exc.status_code)
                raise LLMError("refused", f"HTTP {exc.status_code}") from None
            except Exception as exc:  # an unreadable body and whatever else the SDK raises
                self._timed(path, start)
                if attempt == 2:
                    logger.warning("llm call on path %s failed: %s", path, type(exc).__name__)
                    raise LLMError("unavailable", type(exc).__name__) from None
                continue
            self._timed(path, start)
            return _content(completion)
        raise LLMError("unavailable")  # pragma: no cover - the loop always returns or raises

    def _timed(self, path: str, start: float) -> None:
        if self._on_call is not None:
            self._on_call(path, time.monotonic() - start)


class _FormatRejected(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _names_response_format(exc: Exception) -> bool:
    """An error about the ``response_format`` we sent (whatever its status code)."""
    text = f"{exc} {getattr(exc, 'body', '')}"
    return "response_format" in text or "json_schema" in text


def _retry_after(exc: Exception) -> float:
    """Seconds to wait before the one retry: the server's ``Retry-After`` (at most 2 s), else 0.3 s."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return min(2.0, max(0.0, float(header))) if header is not None else 0.3
    except ValueError:
        return 0.3


def _content(completion: Any) -> str:
    try:
        content = completion.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        raise LLMError("unavailable", "no choices") from None
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return content or ""


# -- tool calling (OpenAI ``tools`` / ``tool_calls``) ------------------------------------------------
#
# An endpoint without tool support answers 400/422 (or an error naming ``tools``): that is
# ``LLMError("tools_unsupported")``, and the caller falls back to its single-shot answer.


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON string it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolTurn:
    """What the model said in one round: text, and/or the tools it wants run before it answers."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()

    def as_message(self) -> dict[str, Any]:
        """The assistant message to send back with the tool results (OpenAI chat format)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


def _tools_rejected(exc: Exception) -> bool:
    text = f"{exc} {getattr(exc, 'body', '')}".lower()
    return any(word in text for word in ("tool", "function"))


def chat_with_tools(
    llm: OpenAICompatibleChat,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    *,
    timeout_s: float,
    path: str = CHAT,
    max_tokens: int | None = None,
    on_delta: Callable[[str], None] | None = None,
) -> ToolTurn:
    """One round of a tool-calling conversation within ``timeout_s``.

    With ``on_delta`` the answer is streamed (``stream: true``) and each piece of text is passed on
    as it arrives; tool-call pieces are gathered. No retries: the caller's loop has one deadline."""
    import openai

    kwargs: dict[str, Any] = {
        "model": llm.name,
        "messages": list(messages),
        "tools": list(tools),
        "temperature": llm.temperature,
    }
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    start = time.monotonic()
    try:
        if on_delta is None:
            completion = llm._client.chat.completions.create(**kwargs, timeout=max(0.5, timeout_s))
            return _tool_turn(completion)
        stream = llm._client.chat.completions.create(**kwargs, stream=True, timeout=max(0.5, timeout_s))
        return _gather(stream, on_delta, deadline=start + timeout_s)
    except openai.APITimeoutError:
        raise LLMError("timeout", f"{timeout_s:g} s") from None
    except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
        raise LLMError("tools_unsupported", f"HTTP {exc.status_code}") from None
    except openai.APIStatusError as exc:
        if exc.status_code >= 500 and _tools_rejected(exc):
            raise LLMError("tools_unsupported", f"HTTP {exc.status_code}") from None
        if exc.status_code in (401, 403, 404):
            raise LLMError("refused", f"HTTP {exc.status_code}") from None
        raise LLMError("unavailable", f"HTTP {exc.status_code}") from None
    except LLMError:
        raise
    except Exception as exc:  # connection errors, unreadable bodies, a stream cut mid-way
        raise LLMError("unavailable", type(exc).__name__) from None
    finally:
        llm._timed(path, start)


_TEXT_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def text_tool_calls(content: str) -> tuple[str, tuple[ToolCall, ...]]:
    """Tool calls a model wrote as text (Qwen/Hermes ``<tool_call>{"name","arguments"}</tool_call>``, as
    llama.cpp servers without a tool parser return them) → (the rest of the text, the calls)."""
    calls = []
    for i, m in enumerate(_TEXT_CALL.finditer(content)):
        try:
            data = json.loads(m.group(1))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            args = data.get("arguments", {})
            calls.append(
                ToolCall(
                    f"call_text_{i}",
                    data["name"],
                    args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                )
            )
    if not calls:
        return content, ()
    return _TEXT_CALL.sub("", content).strip(), tuple(calls)


def _with_text_calls(turn: ToolTurn) -> ToolTurn:
    if turn.tool_calls or "<tool_call>" not in turn.content:
        return turn
    content, calls = text_tool_calls(turn.content)
    return ToolTurn(content, calls)


def _tool_turn(completion: Any) -> ToolTurn:
    try:
        message = completion.choices[0].message
    except (AttributeError, IndexError, TypeError):
        raise LLMError("unavailable", "no choices") from None
    calls = tuple(
        ToolCall(c.id or f"call_{i}", c.function.name or "", c.function.arguments or "")
        for i, c in enumerate(message.tool_calls or ())
        if getattr(c, "function", None) is not None
    )
    return _with_text_calls(ToolTurn(message.content or "", calls))


def _gather(stream: Any, on_delta: Callable[[str], None], *, deadline: float) -> ToolTurn:
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        if time.monotonic() > deadline:
            stream.close()
            raise LLMError("timeout", "stream")
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                text.append(delta.content)
                on_delta(delta.content)
            for part in delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
    tool_calls = tuple(
        ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"]) for i, c in sorted(calls.items())
    )
    return _with_text_calls(ToolTurn("".join(text), tool_calls))

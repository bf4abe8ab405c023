"""The chat-model port and its OpenAI-compatible adapter (OpenAI, DeepSeek, Qwen, Ollama, vLLM …)."""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class LLMError(Exception):
    """The endpoint failed or answered something unusable; callers fall back to offline mode."""


class ChatModel(Protocol):
    name: str

    def complete(self, system: str, user: str, *, json_mode: bool = False) -> str: ...


class OpenAICompatibleChat:
    """langchain-openai's ChatOpenAI against any OpenAI-compatible ``base_url``."""

    def __init__(self, *, base_url: str | None, api_key: str, model: str, timeout_s: float = 30.0) -> None:
        from langchain_openai import ChatOpenAI

        self.name = model
        self._json = ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=1,
            temperature=0.2,
            model_kwargs={"response_format": {"type": "json_object"}},
        )
        self._text = ChatOpenAI(
            model=model, base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=1, temperature=0.2
        )

    def complete(self, system: str, user: str, *, json_mode: bool = False) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        client = self._json if json_mode else self._text
        try:
            reply = client.invoke([SystemMessage(content=system), HumanMessage(content=user)])
        except Exception as exc:  # the SDK raises many types: connection, status, parse
            logger.warning("llm call failed: %s", type(exc).__name__)
            raise LLMError(type(exc).__name__) from exc
        content = reply.content
        if not isinstance(content, str):
            content = "".join(
                part.get("text", "") if isinstance(part, dict) else str(part) for part in content
            )
        return content

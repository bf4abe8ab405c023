"""The composition root: the one place adapters are chosen and wired.

``create_app(build_services(settings))`` — the CLI, the server and the tests all build the
application this way. Heavy parts (embedding model, knowledge base, Whisper) load lazily,
once, so commands that do not need them start fast.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from connectors.crm.base import CRM
from copilot.conversation import Conversation
from copilot.llm.chat_model import ChatModel, OpenAICompatibleChat
from copilot.settings import Settings
from copilot.storage.db import make_engine, migrate
from copilot.users import UserDirectory


class ConfigError(Exception):
    """A setting is missing or wrong; the message (Chinese) names the variable to fix."""


def _local_crm(services: Services) -> CRM:
    from connectors.crm.local import LocalCRM

    return LocalCRM(services.engine)


def _salesforce_crm(services: Services) -> CRM:
    from connectors.crm.salesforce import SalesforceCRM

    cfg = services.settings.salesforce
    if not cfg.instance_url or not cfg.access_token:
        raise ConfigError(
            "请设置 COPILOT_SALESFORCE_INSTANCE_URL 和 COPILOT_SALESFORCE_ACCESS_TOKEN（Salesforce 实例地址与访问令牌）"
        )
    return SalesforceCRM(instance_url=cfg.instance_url, access_token=cfg.access_token)


def _hubspot_crm(services: Services) -> CRM:
    from connectors.crm.hubspot import HubSpotCRM

    cfg = services.settings.hubspot
    if not cfg.token:
        raise ConfigError("请设置 COPILOT_HUBSPOT_TOKEN（HubSpot 私有应用访问令牌）")
    return HubSpotCRM(base_url=cfg.api_base, token=cfg.token)


# Adapters by name (DESIGN §5.1 COPILOT_CRM); the error lists what is valid.
CRM_REGISTRY: dict[str, Callable[[Services], CRM]] = {
    "local": _local_crm,
    "salesforce": _salesforce_crm,
    "hubspot": _hubspot_crm,
}


def offline_env() -> None:
    """Nothing may reach a model hub or phone home at run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@dataclass
class Services:
    settings: Settings
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.resolved_database_url)
        migrate(engine)
        return engine

    @cached_property
    def users(self) -> UserDirectory:
        return UserDirectory(self.engine)

    @cached_property
    def crm(self) -> CRM:
        name = self.settings.crm
        if name not in CRM_REGISTRY:
            raise ConfigError(f"COPILOT_CRM={name!r} 不支持；可选：{', '.join(CRM_REGISTRY)}")
        return CRM_REGISTRY[name](self)

    @cached_property
    def local_crm(self):
        from connectors.crm.local import LocalCRM

        return LocalCRM(self.engine)

    @cached_property
    def metrics(self):
        """Prometheus metrics of this process (one registry, served at /metrics)."""
        from copilot.api.metrics import AppMetrics

        return AppMetrics()

    @cached_property
    def llm(self) -> ChatModel | None:
        cfg = self.settings.llm
        if not cfg.enabled:
            return None
        return OpenAICompatibleChat(
            base_url=cfg.base_url, api_key=cfg.api_key or "", model=cfg.model, timeout_s=cfg.timeout_s
        )

    def provide(self, name: str, component: Any) -> None:
        """Hand in an already-loaded heavy component (``embedder``, ``transcriber``), e.g. shared by tests."""
        self.__dict__[f"_{name}"] = component

    def _once(self, name: str, build: Callable[[], Any]) -> Any:
        # cached_property is not thread-safe; model loading must happen exactly once.
        if name in self.__dict__:
            return self.__dict__[name]
        with self._lock:
            if name not in self.__dict__:
                self.__dict__[name] = build()
        return self.__dict__[name]

    @property
    def embedder(self):
        def build():
            from knowledge_base.embedder import load_embedder

            cfg = self.settings
            return load_embedder(
                cfg.embedding_model,
                models_dir=cfg.models_dir,
                openai_base_url=cfg.llm.base_url,
                openai_api_key=cfg.llm.api_key,
            )

        return self._once("_embedder", build)

    @property
    def kb(self):
        def build():
            from knowledge_base.base import KnowledgeBase

            cfg = self.settings
            from copilot.adoption.ratings import RatingStore

            kb = KnowledgeBase(
                engine=self.engine,
                embedder=self.embedder,
                chroma_path=None if cfg.chroma_url else cfg.chroma_path,
                chroma_url=cfg.chroma_url or None,
                # with a Chroma server the BM25 index is saved in this host's home (embedded: next to Chroma)
                keyword_path=cfg.home / "bm25" / "kb" if cfg.chroma_url else None,
            )
            RatingStore(self.engine).sync(kb)  # reps' talk-track ratings feed ranking from the start
            return kb

        return self._once("_kb", build)

    @property
    def transcriber(self):
        def build():
            from copilot.voice.transcribe import WhisperTranscriber
            from copilot.voice.whisper_model import resolve_whisper_model

            return WhisperTranscriber(
                resolve_whisper_model(self.settings.whisper_model, self.settings.models_dir)
            )

        return self._once("_transcriber", build)

    @property
    def jobs(self):
        """Where long work runs: an in-process pool by default; RQ on Redis (``copilot worker``
        processes) when COPILOT_REDIS_URL is set."""

        def build():
            if self.settings.redis_url:
                from copilot.jobs.redis_queue import RedisJobQueue

                return RedisJobQueue(self.settings.redis_url, queue_name=self.settings.redis_queue)
            from copilot.jobs.inprocess import InProcessJobQueue

            return InProcessJobQueue()

        return self._once("_jobs", build)

    @cached_property
    def conversation(self) -> Conversation:
        from copilot.suggestions import suggester_for

        return Conversation(
            engine=self.engine,
            users=self.users,
            crm=self.crm,
            kb=lambda: self.kb,
            llm=self.llm,
            suggester=lambda: suggester_for(self),
            on_dropped=self.metrics.citations_dropped.inc,
        )


def build_services(settings: Settings | None = None) -> Services:
    offline_env()
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return Services(settings)

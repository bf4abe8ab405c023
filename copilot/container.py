"""The composition root: the one module that chooses adapters and wires services.

``create_app(build_container(settings))`` — the CLI, the server, the workers and the tests all build the
application this way. Every service is a component: built on first use, once per container (thread-safe:
model loading must happen exactly once), or handed in with ``provide`` (tests, a preloaded model).
Heavy parts (embedding model, knowledge base, Whisper) load lazily, so commands that do not need them
start fast. Use cases receive collaborators (callables, ports), never the container.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from connectors.crm.base import CRM
from copilot.errors import ConfigError
from copilot.infra.llm.chat_model import ChatModel, OpenAICompatibleChat
from copilot.settings import Settings
from copilot.storage.db import make_engine, migrate

if TYPE_CHECKING:
    from connectors.channels.base import Channel
    from copilot.features.adoption.report import AdoptionService
    from copilot.features.channels.aibot import AIBotService
    from copilot.features.channels.router import ChannelRouter
    from copilot.features.chat.conversation import Conversation
    from copilot.features.memos.pipeline import MemoPipeline
    from copilot.features.suggestions.suggester import Suggester
    from copilot.identity.login_codes import LoginCodes
    from copilot.identity.sessions import SessionStore
    from copilot.identity.users import UserDirectory
    from copilot.infra.jobs.port import JobQueue
    from copilot.infra.metrics import AppMetrics
    from knowledge_base.base import KnowledgeBase

T = TypeVar("T")


class component(Generic[T]):  # noqa: N801 - used like @cached_property
    """A lazily built service of the container: built once (under the container's lock), or provided."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        built = obj._built
        if self.name in built:
            return built[self.name]
        with obj._lock:
            if self.name not in built:
                built[self.name] = self.build(obj)
        return built[self.name]


# -- adapter registries (COPILOT_CRM; configured channels) ------------------------------------------


def _local_crm(c: Container) -> CRM:
    from connectors.crm.local import LocalCRM

    return LocalCRM(c.engine)


def _salesforce_crm(c: Container) -> CRM:
    from connectors.crm.salesforce import SalesforceCRM

    cfg = c.settings.salesforce
    if not cfg.instance_url or not cfg.access_token:
        raise ConfigError(
            "请设置 COPILOT_SALESFORCE_INSTANCE_URL 和 COPILOT_SALESFORCE_ACCESS_TOKEN（Salesforce 实例地址与访问令牌）"
        )
    return SalesforceCRM(instance_url=cfg.instance_url, access_token=cfg.access_token)


def _hubspot_crm(c: Container) -> CRM:
    from connectors.crm.hubspot import HubSpotCRM

    cfg = c.settings.hubspot
    if not cfg.token:
        raise ConfigError("请设置 COPILOT_HUBSPOT_TOKEN（HubSpot 私有应用访问令牌）")
    return HubSpotCRM(base_url=cfg.api_base, token=cfg.token)


CRM_REGISTRY: dict[str, Callable[[Container], CRM]] = {
    "local": _local_crm,
    "salesforce": _salesforce_crm,
    "hubspot": _hubspot_crm,
}


def _channel_registry(c: Container) -> dict[str, Callable[[], Channel]]:
    from copilot.features.channels import adapters

    return {
        "wecom": lambda: adapters.wecom_channel(c.settings.wecom),
        "dingtalk": lambda: adapters.dingtalk_channel(c.settings.dingtalk),
    }


def offline_env() -> None:
    """Nothing may reach a model hub or phone home at run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()  # re-entrant: building the KB builds the embedder

    # -- overriding and inspecting components ------------------------------------------------------
    def provide(self, name: str, value: Any) -> None:
        """Hand in a component (a preloaded ``embedder``, a scripted ``transcriber``, ``kb`` None = off)."""
        if not isinstance(getattr(type(self), name, None), component):
            raise AttributeError(f"no component {name!r}")
        self._built[name] = value

    def loaded(self, name: str) -> Any:
        """The component if it is built (or provided) already, else None: never builds it."""
        return self._built.get(name)

    def is_loaded(self, name: str) -> bool:
        return name in self._built

    def forget(self, name: str) -> None:
        """Drop a built component: the next use builds it again (as a new process would)."""
        self._built.pop(name, None)

    # -- infrastructure ---------------------------------------------------------------------------
    @component
    def engine(self):
        engine = make_engine(self.settings.resolved_database_url)
        migrate(engine)
        return engine

    @component
    def users(self) -> UserDirectory:
        from copilot.identity.users import UserDirectory

        return UserDirectory(self.engine)

    @component
    def web_sessions(self) -> SessionStore:
        """Server-side web sessions (COPILOT_SESSION_IDLE_MINUTES / COPILOT_SESSION_MAX_HOURS)."""
        from copilot.identity.sessions import SessionStore

        cfg = self.settings
        return SessionStore(
            self.engine,
            self.users,
            idle=timedelta(minutes=cfg.session_idle_minutes),
            absolute=timedelta(hours=cfg.session_max_hours),
        )

    @component
    def login_codes(self) -> LoginCodes:
        """One-time login codes for login links (COPILOT_LOGIN_CODE_MINUTES)."""
        from copilot.identity.login_codes import LoginCodes

        ttl = timedelta(minutes=self.settings.login_code_minutes)
        return LoginCodes(self.engine, self.users, ttl=ttl)

    @component
    def crm(self) -> CRM:
        name = self.settings.crm
        if name not in CRM_REGISTRY:
            raise ConfigError(f"COPILOT_CRM={name!r} 不支持；可选：{', '.join(CRM_REGISTRY)}")
        return CRM_REGISTRY[name](self)

    @component
    def local_crm(self):
        """The built-in CRM's tables (CRM import writes there): the CRM itself when it is the local one."""
        from connectors.crm.local import LocalCRM

        return self.crm if self.settings.crm == "local" else LocalCRM(self.engine)

    @component
    def metrics(self) -> AppMetrics:
        """Prometheus metrics of this process (one registry, served at /metrics)."""
        from copilot.infra.metrics import AppMetrics

        return AppMetrics()

    @component
    def llm(self) -> ChatModel | None:
        cfg = self.settings.llm
        if not cfg.enabled:
            return None
        return OpenAICompatibleChat(
            base_url=cfg.base_url,
            api_key=cfg.api_key or "",
            model=cfg.model,
            timeout_s=cfg.timeout_s,
            timeouts=cfg.timeouts(),
            context_tokens=cfg.context_tokens,
            response_format=cfg.response_format,
            on_outcome=self.metrics.llm_outcome,
            on_call=self.metrics.llm_call,
        )

    @component
    def jobs(self) -> JobQueue:
        """Where long work runs, by task name (``tasks``): an in-process pool by default; RQ on Redis
        (``copilot worker`` processes) when COPILOT_REDIS_URL is set."""
        if self.settings.redis_url:
            from copilot.infra.jobs.redis_queue import RedisJobQueue

            return RedisJobQueue(
                self.settings.redis_url,
                queue_name=self.settings.redis_queue,
                run_task=self.run_task,
            )
        from copilot.infra.jobs.inprocess import InProcessJobQueue

        return InProcessJobQueue(run_task=self.run_task)

    @component
    def tasks(self) -> dict[str, Callable[..., Any]]:
        """Every background job by name, with plain arguments (ids, frozen dataclasses): the same
        names run in-process or on a `copilot worker` (``copilot.worker.tasks.run_task``)."""
        return {
            "process_memo": lambda memo_id: self.memos.process(memo_id),
            "handle_messages": lambda messages: self.channels.handle_batch(messages),
            "channel_memo": lambda message, user_id, memo_id: self.channels.voice.process(
                message, user_id, memo_id
            ),
            "answer_aibot": lambda message, stream_id: self.aibot.answer(message, stream_id),
            "generate_suggestions": lambda customer_id, as_of=None: self.suggester.generate_for_owner(
                customer_id, as_of
            ),
        }

    def run_task(self, name: str, *args: Any) -> Any:
        if name not in self.tasks:
            raise KeyError(f"unknown task {name!r}")
        return self.tasks[name](*args)

    # -- models and the knowledge base ---------------------------------------------------------------
    @component
    def embedder(self):
        from knowledge_base.embedder import load_embedder

        cfg = self.settings
        return load_embedder(
            cfg.embedding_model,
            models_dir=cfg.models_dir,
            openai_base_url=cfg.llm.base_url,
            openai_api_key=cfg.llm.api_key,
            backend=cfg.embed_backend,
        )

    @component
    def kb(self) -> KnowledgeBase | None:
        from copilot.features.adoption.ratings import RatingStore
        from knowledge_base.base import KnowledgeBase

        cfg = self.settings
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

    def kb_if_cheap(self) -> Any:
        """The loaded KB, else its catalogue straight from the database (no embedding model, no vector
        store) when the KB tables exist; None when the KB was switched off (``provide("kb", None)``)."""
        if self.is_loaded("kb"):
            return self.loaded("kb")
        from sqlalchemy import inspect

        from knowledge_base.catalog import Catalog, kb_documents

        if not inspect(self.engine).has_table(kb_documents.name):
            return None
        return Catalog(self.engine)

    @component
    def transcriber(self):
        from copilot.voice.transcribe import WhisperTranscriber
        from copilot.voice.whisper_model import resolve_whisper_model

        return WhisperTranscriber(
            resolve_whisper_model(self.settings.whisper_model, self.settings.models_dir),
            idle_seconds=self.settings.whisper_idle_seconds,
        )

    # -- use cases ------------------------------------------------------------------------------------
    @component
    def rules(self):
        from copilot.agent.rules import RuleStore

        return RuleStore(self.settings.home / "rules.yaml")

    @component
    def rules_admin(self):
        from copilot.features.rules_admin import RulesAdmin

        sg = self.suggester
        return RulesAdmin(store=self.rules, home=self.settings.home, kb=lambda: self.kb, crm=self.crm,
                          facts=lambda snap, day: sg.facts(snap, day, sg.kb()), llm=lambda: self.llm,
                          teams=self.users.teams)  # fmt: skip

    @component
    def memo_repo(self):
        from copilot.features.memos.repo import MemoRepo

        return MemoRepo(self.engine, self.settings.home / "uploads")

    @component
    def suggester(self) -> Suggester:
        from copilot.features.suggestions.suggester import Suggester

        return Suggester(
            engine=self.engine,
            users=self.users,
            crm=self.crm,
            kb=lambda: self.kb,
            llm=self.llm,
            rules=self.rules,
            memos=self.memo_repo,
            on_failed=self.notifier,
            on_dropped=self.metrics.citations_dropped.inc,
        )

    @component
    def conversation(self) -> Conversation:
        from copilot.features.chat.conversation import Conversation

        return Conversation(
            engine=self.engine,
            users=self.users,
            crm=self.crm,
            kb=lambda: self.kb,
            llm=self.llm,
            suggester=lambda: self.suggester,
            on_dropped=self.metrics.citations_dropped.inc,
            on_failed=self.notifier,
            idle_minutes=self.settings.chat_idle_seconds / 60,
            tools=self.settings.llm.tools != "off",
            max_tool_rounds=self.settings.llm.tool_rounds,
        )

    @component
    def memos(self) -> MemoPipeline:
        from copilot.features.memos.pipeline import MemoPipeline

        cfg = self.settings
        return MemoPipeline(
            repo=self.memo_repo,
            crm=self.crm,
            users=self.users,
            transcriber=lambda: self.transcriber,
            llm=self.llm,
            jobs=self.jobs,
            max_bytes=cfg.max_upload_bytes,
            max_seconds=float(cfg.max_audio_seconds),
            suggest=self._memo_suggestions,
            kb=self.kb_if_cheap,
            embedder=lambda: self.loaded("embedder"),
            quota_bytes=cfg.upload_quota_bytes,
            failed_retention=timedelta(days=cfg.failed_upload_retention_days),
        )

    def _memo_suggestions(self, memo_id: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        from copilot.features.suggestions.suggester import suggestions_citing_memo

        row = self.memo_repo.get(memo_id)
        user = self.users.get(row.user_id) if row is not None and row.user_id else None
        return suggestions_citing_memo(self.suggester, memo_id, row.customer_id if row else None, user)

    @component
    def channels(self) -> ChannelRouter:
        from copilot.features.channels.router import ChannelRouter

        return ChannelRouter(
            engine=self.engine,
            users=self.users,
            conversation=lambda: self.conversation,
            jobs=self.jobs,
            channels=_channel_registry(self),
            suggester=lambda: self.suggester,
            memos=lambda: self.memos,
            crm=self.crm,
        )

    @component
    def aibot(self) -> AIBotService:
        from copilot.features.channels import adapters
        from copilot.features.channels.aibot import AIBotService

        bot, responder, push = adapters.aibot(self.settings.wecom)
        return AIBotService(
            engine=self.engine,
            users=self.users,
            conversation=lambda: self.conversation,
            jobs=self.jobs,
            bot=bot,
            responder=responder,
            push=push,
        )

    @component
    def adoption(self) -> AdoptionService:
        from copilot.features.adoption.report import AdoptionService

        return AdoptionService(self.engine, self.users, self.crm)

    @component
    def channel_push(self) -> Callable[[str, str], bool] | None:
        """How to reach a rep proactively (their bound WeCom/DingTalk accounts); None when no chat
        channel is configured (then failures are only in GET /api/notifications)."""
        cfg = self.settings
        if not (cfg.wecom.corp_id or cfg.dingtalk.app_key):
            return None
        return lambda user_id, text: bool(self.channels.push(user_id, text))

    @component
    def notifier(self) -> Callable[[dict[str, Any]], None]:
        """The outbox's ``on_failed`` hook: a Chinese notification (and chat push) for the rep."""
        from copilot.features.writeback.delivery import failure_notifier

        return failure_notifier(self.engine, push=lambda: self.channel_push)

    @component
    def writeback(self):
        """The background write-back pass (outbox delivery + CRM sync-back) of this process."""
        from copilot.features.writeback.delivery import WritebackTicker

        return WritebackTicker(
            engine=self.engine,
            crm=lambda: self.crm,
            on_failed=self.notifier,
            sync_interval_s=self.settings.crm_sync_interval_s,
        )


def build_container(settings: Settings | None = None) -> Container:
    offline_env()
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return Container(settings)

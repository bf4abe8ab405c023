"""One settings tree, read once at the edge (DESIGN §5.1: exact env names).

Sub-settings carry their own ``env_prefix`` so the flat variable names of the
contract (``COPILOT_WECOM_AES_KEY``, ``OPENAI_API_KEY`` …) stay what they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    model: str = Field(default="gpt-4o-mini", validation_alias="COPILOT_LLM_MODEL")
    timeout_s: float = Field(default=30.0, validation_alias="COPILOT_LLM_TIMEOUT_S")
    # Time budget per path: a person waits for a chat answer; suggestions and memo extraction mostly
    # run in background jobs and may take longer. Unset: chat = COPILOT_LLM_TIMEOUT_S, the others at
    # least BACKGROUND_TIMEOUT_S.
    chat_timeout_s: float | None = Field(default=None, validation_alias="COPILOT_LLM_CHAT_TIMEOUT_S")
    suggest_timeout_s: float | None = Field(default=None, validation_alias="COPILOT_LLM_SUGGEST_TIMEOUT_S")
    extract_timeout_s: float | None = Field(default=None, validation_alias="COPILOT_LLM_EXTRACT_TIMEOUT_S")
    # The endpoint's context window (prompt + answer, tokens): evidence is trimmed to fit.
    context_tokens: int = Field(default=4096, ge=512, validation_alias="COPILOT_LLM_CONTEXT_TOKENS")
    # auto: json_schema, then json_object (+ schema), then json_object, then none, as the endpoint accepts.
    # json_object_schema: json_object + schema first — llama-cpp-python's server accepts a json_schema
    # response_format but constrains only json_object (+ schema) by a grammar (`copilot llm serve`).
    response_format: Literal["auto", "json_schema", "json_object", "json_object_schema", "off"] = Field(
        default="auto", validation_alias="COPILOT_LLM_RESPONSE_FORMAT"
    )

    # Chat with tool calling (search_kb, get_customer, list_suggestions, propose_change): auto = offer
    # the tools; an endpoint that rejects them (or never calls one) gets the single-shot answer. off = never.
    tools: Literal["auto", "off"] = Field(default="auto", validation_alias="COPILOT_LLM_TOOLS")
    tool_rounds: int = Field(default=4, ge=1, le=8, validation_alias="COPILOT_LLM_TOOL_ROUNDS")

    BACKGROUND_TIMEOUT_S: ClassVar[float] = 120.0

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def timeouts(self) -> dict[str, float]:
        """Seconds per path (``chat``, ``suggest``, ``extract``)."""
        background = max(self.timeout_s, self.BACKGROUND_TIMEOUT_S)
        return {
            "chat": self.chat_timeout_s or self.timeout_s,
            "suggest": self.suggest_timeout_s or background,
            "extract": self.extract_timeout_s or background,
        }


class SalesforceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_SALESFORCE_", extra="ignore")

    instance_url: str | None = None
    access_token: str | None = None


class HubSpotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_HUBSPOT_", extra="ignore")

    api_base: str = "https://api.hubapi.com"
    token: str | None = None


class WeComSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_WECOM_", extra="ignore")

    corp_id: str | None = None
    agent_id: str | None = None
    secret: str | None = None
    token: str | None = None
    aes_key: str | None = None
    api_base: str = "https://qyapi.weixin.qq.com"
    # The AI bot (智能机器人, API mode): its own Token and EncodingAESKey (the receive id is "").
    aibot_token: str | None = None
    aibot_aes_key: str | None = None
    # Also post answers to the message's response_url: "late" (only answers ready after WeCom
    # stopped polling the stream), "always" or "off".
    aibot_push: str = "late"


class DingTalkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_DINGTALK_", extra="ignore")

    app_key: str | None = None
    app_secret: str | None = None
    robot_code: str | None = None
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_", extra="ignore", populate_by_name=True)

    home: Path = Path("./.copilot")
    database_url: str | None = None
    chroma_url: str | None = None
    redis_url: str | None = None
    redis_queue: str = "copilot"  # the RQ queue API processes submit to and `copilot worker` serves
    embedding_model: str | None = None
    # The bundled embedding model's runtime: onnx (onnxruntime, no torch in the process; exported once at
    # provisioning) or torch (sentence-transformers, the fallback).
    embed_backend: Literal["onnx", "torch"] = "onnx"
    whisper_model: str | None = None
    # Whisper loads on the first memo and is released after this many idle seconds (0 = keep it loaded).
    whisper_idle_seconds: float = Field(default=600.0, ge=0)
    crm: str = "local"
    # Where bundled models are provisioned; several homes (or tests) may share one.
    models_dir_override: Path | None = Field(default=None, validation_alias="COPILOT_MODELS_DIR")
    # Upload limits for memos (bytes / seconds).
    max_upload_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: int = 600
    # Background write-back: outbox delivery every N seconds (0 = off), CRM sync-back every M seconds.
    outbox_interval_s: float = 30.0
    chat_idle_seconds: float = 7200.0  # a conversation idle this long starts afresh (focus, pending change)
    crm_sync_interval_s: float = 600.0
    # Security (SECURITY.md): request bodies, web sessions, login links, abuse limits, headers.
    max_json_bytes: int = 1024 * 1024  # every request body but memo uploads and platform callbacks
    https: bool = False  # served over HTTPS (e.g. behind nginx): Secure cookies and HSTS
    session_idle_minutes: int = 720  # a web session ends after this long without a request
    session_max_hours: int = 168  # … and this long after the login, whatever happens
    login_code_minutes: int = 10  # one-time login links (`copilot users login-link`)
    metrics_token: str | None = None  # when set, GET /metrics needs `Authorization: Bearer <it>`
    api_docs: bool = True  # /docs (Swagger UI, served from the installed package, no CDN)
    rate_limits: bool = True
    rate_limit_login: str = "10/15 minutes"  # failed logins per client address
    rate_limit_expensive: str = "60/minute"  # per user: chat, KB search, suggestions, digest, rule previews
    rate_limit_uploads: str = "30/hour"  # per user: memo uploads
    upload_quota_bytes: int = 500 * 1024 * 1024  # per user, per 24 hours (memo uploads)
    failed_upload_retention_days: float = 7.0  # the audio of a failed memo is deleted after this

    llm: LLMSettings = Field(default_factory=LLMSettings)
    salesforce: SalesforceSettings = Field(default_factory=SalesforceSettings)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    wecom: WeComSettings = Field(default_factory=WeComSettings)
    dingtalk: DingTalkSettings = Field(default_factory=DingTalkSettings)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home.resolve() / 'copilot.db'}"

    @property
    def models_dir(self) -> Path:
        return self.models_dir_override or self.home / "models"

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"
